"""Offline goal-conditioned datasets: `python -m scripts.make_dataset env=NAME policy=oracle|noisy|random
episodes=N [noise=0.5] [out=PATH]`, written in the agents.goal_dataset layout for `agent=crl agent.dataset=PATH`
and `agent=gcbc agent.dataset=PATH`; `out=minari:ID` writes Minari's format instead, the local Minari dataset ID
(agents/minari_dataset.py) that `agent.dataset=minari:ID` reads.

`oracle` is the env's scripted policy (envs/scripted.py), `noisy` the same with N(0, noise²) added to every action
(clipped), the kind of data OGBench's "noisy" datasets and Stabilizing CRL's scripted-plus-noise data are;
`random` takes uniform actions. Episodes run to the env config's `max_episode_steps`; each copy's episode is
written whole once it ends. On `env=ogbench_cube_single`, `env=ogbench_cube_double` and `env=ogbench_scene`, `noisy`
and `play` (or `oracle`) follow OGBench's own collection protocol with its oracles (envs/ogbench_manip.py: 1001-step
episodes, new targets as each is reached). On `env=ogbench_pointmaze_medium` and `env=ogbench_pointmaze_large`,
`navigate` and `stitch` are OGBench's locomaze protocols with its BFS oracle (envs/ogbench_maze.py: 1001-step
episodes toward random goals / 201-step episodes to a cell 4 steps away; `noise`, 0.5 by default, is OGBench's).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs  # noqa: F401  (registers crlab/ envs)
from agents.goal_dataset import STEP_FIELDS, save_goal_dataset
from agents.minari_dataset import minari_id, new_dataset_folder, save_minari_goal_dataset
from envs.batched import true_next_obs
from envs.ogbench_manip import OGBENCH_ENVS, collect_ogbench
from envs.ogbench_maze import LOCOMAZE_ENVS, PROTOCOLS, collect_locomaze
from envs.scripted import noisy_policy, random_policy, scripted_policy
from scripts.cli import check_env_id, check_keys, start, user_errors

POLICIES = ("oracle", "noisy", "random", "play")  # play: OGBench's plan oracles (OGBench's envs only)
OGBENCH_KINDS = {"noisy": "noisy", "play": "play", "oracle": "play"}  # OGBench's own collection per policy
LOCOMAZE_POLICIES = tuple(PROTOCOLS)  # navigate | stitch: OGBench's locomaze protocols (its PointMaze envs only)


def collect(env_cfg: DictConfig, policy_name: str, noise: float, episodes: int, num_envs: int, seed: int,
            progress: bool = False) -> dict[str, np.ndarray]:
    """`episodes` whole episodes of the policy in `num_envs` copies of the env of `env_cfg`, as STEP_FIELDS arrays."""
    if policy_name not in POLICIES + LOCOMAZE_POLICIES:
        raise ValueError(f"policy={policy_name!r} is not one of {list(POLICIES)} (OGBench's mazes: "
                         f"{' | '.join(LOCOMAZE_POLICIES)})")
    if not noise >= 0:
        raise ValueError(f"noise={noise} must be >= 0")
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes={episodes} and num_envs={num_envs} must be >= 1")
    if env_cfg.id in LOCOMAZE_ENVS or policy_name in LOCOMAZE_POLICIES:  # OGBench's locomaze protocols, BFS oracle
        if env_cfg.id not in LOCOMAZE_ENVS or policy_name not in LOCOMAZE_POLICIES:
            raise ValueError(f"policy={' | '.join(LOCOMAZE_POLICIES)} are OGBench's locomaze protocols, the only ones on "
                             f"env=ogbench_pointmaze_medium | ogbench_pointmaze_large (got env={env_cfg.name} "
                             f"policy={policy_name})")
        return collect_locomaze(policy_name, episodes, seed, name=LOCOMAZE_ENVS[env_cfg.id], noise=noise,
                                progress=progress)
    if env_cfg.id in OGBENCH_ENVS and policy_name in OGBENCH_KINDS:  # OGBench's protocol, its oracles
        return collect_ogbench(OGBENCH_KINDS[policy_name], episodes, seed, name=OGBENCH_ENVS[env_cfg.id][0],
                               progress=progress)
    if policy_name == "play":
        raise ValueError(f"policy=play is OGBench's plan oracles: env=ogbench_cube_single | ogbench_cube_double | "
                         f"ogbench_scene only (got env={env_cfg.name})")
    kwargs = OmegaConf.to_container(env_cfg.kwargs, resolve=True)
    env = gymnasium.make_vec(env_cfg.id, num_envs=num_envs, max_episode_steps=env_cfg.max_episode_steps, **kwargs)
    space = env.single_observation_space
    if not isinstance(space, gymnasium.spaces.Dict) or not {"observation", "achieved_goal", "desired_goal"} <= set(space.spaces):
        env.close()
        raise ValueError(f"env={env_cfg.name} is not a goal env (Dict observation / achieved_goal / desired_goal)")
    rng = np.random.default_rng(seed)
    if policy_name == "random":
        one = random_policy(env.single_action_space, seed)
    else:
        single = gymnasium.make(env_cfg.id, **kwargs)
        one = scripted_policy(single)
        if policy_name == "noisy":
            one = noisy_policy(one, env.single_action_space, noise, rng)
    open_rows: list[list[dict[str, Any]]] = [[] for _ in range(num_envs)]
    finished: list[dict[str, Any]] = []
    done_count = 0
    bar = tqdm(total=episodes, unit="episode", desc=f"{env_cfg.name} {policy_name}", disable=not progress)
    obs, _ = env.reset(seed=seed)
    while done_count < episodes:
        action = np.stack([one({k: v[i] for k, v in obs.items()}) for i in range(num_envs)]).astype(np.float32)
        next_obs, _, terminated, truncated, info = env.step(action)
        real_next = true_next_obs(next_obs, info)
        done = terminated | truncated
        for i in range(num_envs):
            open_rows[i].append({"observations": obs["observation"][i], "actions": action[i],
                                 "next_observations": real_next["observation"][i],
                                 "achieved_goals": obs["achieved_goal"][i],
                                 "next_achieved_goals": real_next["achieved_goal"][i], "terminals": bool(done[i])})
            if done[i]:
                if done_count < episodes:
                    finished += open_rows[i]
                    done_count += 1
                    bar.update(1)
                open_rows[i] = []
        obs = next_obs
    bar.close()
    env.close()
    return {k: np.stack([r[k] for r in finished]) for k in STEP_FIELDS}


def env_spec_of(env_cfg: DictConfig) -> gymnasium.envs.registration.EnvSpec | None:
    """The registered spec of the env config's id with the config's kwargs and episode length (None if unregistered)."""
    if env_cfg.id not in gymnasium.registry:
        return None
    spec = gymnasium.spec(env_cfg.id)
    kwargs = OmegaConf.to_container(env_cfg.kwargs, resolve=True)
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs}, max_episode_steps=env_cfg.max_episode_steps)


# scripts/conf/make_dataset.yaml's numbers: name -> (rule, accepts null), as scripts.cli.check_keys reads them
KEYS = {"episodes": ("int > 0", False), "num_envs": ("int > 0", False), "seed": ("int >= 0", False),
        "noise": ("number >= 0", False)}


def make_dataset(cfg: DictConfig) -> Path:
    """Collect `cfg.episodes` episodes of `cfg.policy` on `cfg.env` and write them as a goal dataset (`out=minari:ID`:
    a local Minari dataset); returns its path (a Minari dataset's folder)."""
    check_keys(cfg, KEYS)
    check_env_id(cfg.env.id)
    dataset_id = minari_id(cfg.out) if cfg.out else None
    if dataset_id is not None:
        new_dataset_folder(dataset_id)  # a malformed or taken id is refused before collecting
    steps = collect(cfg.env, cfg.policy, cfg.noise, cfg.episodes, cfg.num_envs, cfg.seed, cfg.progress)
    meta = dict(env_id=cfg.env.id, policy=cfg.policy, noise=float(cfg.noise), seed=int(cfg.seed), episodes=int(cfg.episodes))
    if dataset_id is not None:
        path = save_minari_goal_dataset(dataset_id, steps, env_spec_of(cfg.env), **meta)
    else:
        path = save_goal_dataset(Path(cfg.out) if cfg.out else Path("data") / f"{cfg.env.name}_{cfg.policy}.npz", steps, **meta)
    print(f"dataset: {cfg.out if dataset_id else path} ({len(steps['actions']):,} steps, {cfg.episodes} episodes)")
    return path


@hydra.main(config_path="conf", config_name="make_dataset", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors():
        make_dataset(cfg)


if __name__ == "__main__":
    start(main, Path(__file__).parent / "conf", "make_dataset")
