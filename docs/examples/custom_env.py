"""Add an env: a point on a plane that moves to a goal, written once as a batched task.

Run it: `.venv/bin/python docs/examples/custom_env.py` (tests/test_docs.py does, and checks what it prints).
It registers `crlab/PointGoal-v0`, checks both Gymnasium faces, and trains Contrastive RL on it through the run
engine, as `python -m scripts.train agent=crl` would.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import register
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the crlab/ namespace; sets MUJOCO_GL)
from envs.batched import BatchedEnv, BatchedTask, BatchedVectorEnv, vector_entry_point

SUCCESS_DISTANCE = 0.1
STEP_SIZE = 0.1  # an action of norm 1 moves the point 0.1 per step


class PointGoalTask(BatchedTask):
    """N points in [-1, 1]^2, each with a goal. GoalEnv dict observations; actions (2,) move the point."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, num_envs: int = 1, reward_type: str = "sparse", size: int = 96) -> None:
        super().__init__(num_envs)
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type={reward_type!r} is not one of ('sparse', 'dense')")
        self.reward_type, self.size = reward_type, size
        box = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros((num_envs, 2))
        self.goal = np.zeros((num_envs, 2))

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:  # each copy draws from its own generator: copy i of a vector env = single env seeded s + i
            self.position[i] = self.rngs[i].uniform(-1.0, 1.0, 2)
            self.goal[i] = self.rngs[i].uniform(-1.0, 1.0, 2)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        self.position = np.clip(self.position + STEP_SIZE * np.clip(actions, -1.0, 1.0), -1.0, 1.0)
        distance = np.linalg.norm(self.position - self.goal, axis=-1)
        reward = self.compute_reward(self.position, self.goal, None)
        return reward, np.zeros(self.num_envs, dtype=bool), {"is_success": distance < SUCCESS_DISTANCE}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Vectorized over any leading shape, and `info` is not read: HER relabels exactly."""
        distance = np.linalg.norm(achieved_goal - desired_goal, axis=-1)
        return -(distance >= SUCCESS_DISTANCE).astype(np.float64) if self.reward_type == "sparse" else -distance

    def observe(self) -> dict[str, np.ndarray]:
        return {"observation": self.position.copy(), "achieved_goal": self.position.copy(),
                "desired_goal": self.goal.copy()}

    def render(self, copy: int) -> np.ndarray:
        ys, xs = np.mgrid[0:self.size, 0:self.size]
        to_pixels = lambda p: (p + 1.0) / 2.0 * (self.size - 1)  # noqa: E731
        frame = np.full((self.size, self.size, 3), 255, dtype=np.uint8)
        for point, colour, radius in ((self.goal[copy], (40, 180, 60), 6), (self.position[copy], (40, 90, 220), 4)):
            x, y = to_pixels(point)
            frame[(xs - x) ** 2 + (ys - (self.size - 1 - y)) ** 2 <= radius**2] = colour
        return frame

    def describe(self, copy: int) -> str:
        distance = float(np.linalg.norm(self.position[copy] - self.goal[copy]))
        return "The point is on the goal." if distance < SUCCESS_DISTANCE else f"The goal is {distance:.2f} away."


class PointGoalEnv(BatchedEnv):
    """`crlab/PointGoal-v0`: one point (a batch of one)."""

    metadata = PointGoalTask.metadata  # gymnasium.make reads the class's render modes before building it

    def __init__(self, reward_type: str = "sparse", render_mode: str | None = None) -> None:
        super().__init__(PointGoalTask(1, reward_type), render_mode)


class PointGoalVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/PointGoal-v0`: all copies stepped by one numpy call."""

    def __init__(self, num_envs: int = 1, reward_type: str = "sparse", max_episode_steps: int | None = 30,
                 render_mode: str | None = None) -> None:
        super().__init__(PointGoalTask(num_envs, reward_type), max_episode_steps, render_mode)


# In crlab itself this goes in envs/__init__.py, with "envs.point_goal:PointGoalEnv" as the entry point.
MODULE = __name__  # "__main__" when run as a script
register(id="crlab/PointGoal-v0", entry_point=f"{MODULE}:PointGoalEnv",
         vector_entry_point=vector_entry_point(f"{MODULE}:PointGoalVectorEnv"), max_episode_steps=30)


def greedy(obs: dict[str, np.ndarray]) -> np.ndarray:
    """A scripted policy: straight at the goal."""
    return np.clip((obs["desired_goal"] - obs["achieved_goal"]) / STEP_SIZE, -1.0, 1.0).astype(np.float32)


def success_rate(policy: Any, episodes: int = 64, seed: int = 100) -> float:
    vec = gymnasium.make_vec("crlab/PointGoal-v0", num_envs=episodes)
    obs, _ = vec.reset(seed=seed)
    success = np.zeros(episodes)
    for _ in range(30):
        obs, _, _, truncated, info = vec.step(policy(obs))
        final = info.get("final_info", info)
        success = np.where(truncated, final["is_success"], success)
    vec.close()
    return float(success.mean())


def main() -> None:
    # 1. The single env passes Gymnasium's checker and renders.
    env = gymnasium.make("crlab/PointGoal-v0", render_mode="rgb_array")
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    print(f"single env: keys {sorted(obs)}, frame {frame.shape}, {env.unwrapped.describe()!r}")

    # 2. The vector form: copy i seeded s replays the single env seeded s + i.
    vec = gymnasium.make_vec("crlab/PointGoal-v0", num_envs=4)
    vec_obs, _ = vec.reset(seed=7)
    single_obs, _ = env.reset(seed=7 + 2)
    assert np.allclose(vec_obs["desired_goal"][2], single_obs["desired_goal"])
    print(f"vector env: {vec.num_envs} copies, copy 2 replays the single env seeded 9")

    # 3. A scripted policy solves it; random actions rarely do.
    rng = np.random.default_rng(0)
    scripted, random = success_rate(greedy), success_rate(lambda o: rng.uniform(-1, 1, (64, 2)).astype(np.float32))
    print(f"success: scripted {scripted:.2f}, random {random:.2f}")
    assert scripted == 1.0 and random < 0.3

    # 4. Train Contrastive RL on it through the run engine (what `scripts.train` does with an env config).
    from omegaconf import OmegaConf, open_dict

    from scripts.engine import train
    from scripts.run_setup import compose_config

    cfg = compose_config("train", ["agent=crl", "env=reach", "total_env_steps=4000", "eval_every=2000",
                                   "eval_episodes=32", "video_episodes=0", "progress=false", "agent.warmup_steps=500"])
    with open_dict(cfg):  # the env group, as scripts/conf/env/point_goal.yaml would hold it
        cfg.env = OmegaConf.create({"name": "point_goal", "id": "crlab/PointGoal-v0", "num_envs": 16,
                                    "max_episode_steps": 30, "kwargs": {"reward_type": "sparse"}})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = train(cfg, Path(tmp) / "run")
        rows = (run_dir / "metrics.csv").read_text().splitlines()
        print("metrics.csv:", *rows, sep="\n  ")
        final_success = float(rows[-1].split(",")[2])
    print(f"crl on crlab/PointGoal-v0: final success {final_success:.2f}")
    assert final_success >= 0.5, "crl should learn this env within 4k env steps"


if __name__ == "__main__":
    sys.exit(main())
