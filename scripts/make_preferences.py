"""Build a segment-pair preference dataset from recorded rollouts:

    python -m scripts.make_preferences rollouts=PATH labeler=gold|preference|vlm_preference [pairs=N] [out=FILE]

`rollouts` is a rollout `.npz` (envs/recorder.py layout, e.g. from `scripts.record`), a folder of them, or an
offline goal dataset (`scripts.make_dataset`, agents/goal_dataset.py; OGBench files too): each of its episodes is
given, in hindsight, the goal its last state achieves as `desired_goal`, and the reward minus the distance of the
achieved goal to it (label with `gold_score=progress`), so CPL learns a goal-conditioned policy from it. Random
windows of `segment_length` steps are cut from their episodes and paired at random; a teacher labels each pair:
    gold            the rollouts' own (ground-truth) rewards, via rewards.preference.SyntheticLabeler (Boltzmann
                    `beta`, `error_rate`, `tie_threshold`)
    preference      the returns of a trained PreferenceRewardModel (`model=FILE`), same labeller
    vlm_preference  a CLIP frame labeler on each segment's last frame (RL-VLM-F; needs recorded frames)
The dataset layout is agents/preference_dataset.py's; `agent=cpl agent.dataset=FILE` trains on it.

With `record.env=NAME`, rollouts are first recorded into the `rollouts` folder with a random policy or a
checkpoint's policy plus per-episode action noise (`record.noise`), so that segments span a range of quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers crlab/ envs)
from agents import resolve_device
from agents.base import obs_to_tensor
from agents.checkpoint import load_checkpoint
from agents.goal_dataset import episode_bounds, load_goal_dataset
from agents.preference_dataset import save_preference_dataset
from envs.atomic_file import atomic_write
from envs.batched import true_next_obs
from envs.scripted import scripted_policy
from rewards.evaluation import Rollouts, load_rollouts
from rewards.preference import PreferenceRewardModel, SyntheticLabeler
from scripts.cli import check_keys
from scripts.run_setup import agent_from_config

CONF = Path(__file__).resolve().parent / "conf"
LABELERS = ("gold", "preference", "vlm_preference")
# scripts/conf/make_preferences.yaml's numbers, top level and under record: name -> (rule, accepts null)
KEYS = {"pairs": ("int > 0", False), "segment_length": ("int > 0", False), "seed": ("int >= 0", False),
        "error_rate": ("number >= 0", False), "tie_threshold": ("number >= 0", False), "beta": ("number > 0", True)}
RECORD_KEYS = {"episodes": ("int > 0", False), "num_envs": ("int > 0", False), "max_episode_steps": ("int > 0", True)}


# --- recording ----------------------------------------------------------------------------------------------
def make_record_env(name: str, num_envs: int, env_kwargs: dict[str, Any], render: bool,
                    max_episode_steps: int | None = None) -> gymnasium.vector.VectorEnv:
    """A vector env from an env config name (scripts/conf/env/NAME.yaml) or a Gymnasium id."""
    config = CONF / "env" / f"{name}.yaml"
    if config.is_file():
        env_cfg = OmegaConf.load(config)
        env_id, steps = env_cfg.id, env_cfg.max_episode_steps
        kwargs = {**OmegaConf.to_container(env_cfg.kwargs, resolve=True), **env_kwargs}
    elif name in gymnasium.registry:
        env_id, steps, kwargs = name, gymnasium.registry[name].max_episode_steps, dict(env_kwargs)
    else:
        known = sorted(p.stem for p in (CONF / "env").glob("*.yaml"))
        raise ValueError(f"record.env={name!r} is neither an env config {known} nor a registered Gymnasium id")
    return gymnasium.make_vec(env_id, num_envs=num_envs, max_episode_steps=max_episode_steps or steps,
                              render_mode="rgb_array" if render else None, **kwargs)



class NoisyPolicy:
    """A checkpoint's policy, the env's scripted policy (envs/scripted.py, `scripted=True`) or uniform random actions,
    plus per-copy noise: Gaussian with std `noise` half-ranges for Box actions, epsilon-random with epsilon = `noise`
    for Discrete."""

    def __init__(self, env: gymnasium.vector.VectorEnv, checkpoint: str | None, device: torch.device, seed: int,
                 scripted: bool = False) -> None:
        self.space = env.single_action_space
        self.space.seed(seed)
        self.rng = np.random.default_rng(seed)
        self.agent = None
        self.scripted = None
        if scripted:
            if checkpoint is not None:
                raise ValueError("record.scripted=true and record.checkpoint are two policies: give one")
            if env.spec is None:
                raise ValueError("record.scripted=true needs a registered env")
            self.scripted = scripted_policy(gymnasium.make(env.spec.id))  # per observation: one env serves all copies
        if checkpoint is not None:
            state = load_checkpoint(checkpoint)
            cfg = OmegaConf.create(state["config"])
            obs_space = env.single_observation_space
            if isinstance(obs_space, gymnasium.spaces.Dict):
                obs_space = gymnasium.spaces.Dict({k: s for k, s in obs_space.spaces.items()
                                                   if not isinstance(s, gymnasium.spaces.Text)})
            self.agent = agent_from_config(cfg, obs_space, self.space, env.num_envs, device)
            self.agent.load_state_dict(state["agent"])

    def __call__(self, obs: Any, noise: np.ndarray) -> np.ndarray:
        n = len(noise)
        if self.scripted is not None:
            pick = (lambda i: {k: v[i] for k, v in obs.items()}) if isinstance(obs, dict) else (lambda i: obs[i])
            action = np.stack([np.asarray(self.scripted(pick(i))) for i in range(n)])
        elif self.agent is None:
            return np.stack([self.space.sample() for _ in range(n)])
        else:
            action = self.agent.act(obs_to_tensor(obs, self.agent.device), deterministic=True).cpu().numpy()
        if isinstance(self.space, gymnasium.spaces.Discrete):
            explore = self.rng.random(n) < noise
            return np.where(explore, self.rng.integers(self.space.start, self.space.start + self.space.n, n), action)
        half_range = (self.space.high - self.space.low) / 2
        action = action + self.rng.normal(size=action.shape) * noise[:, None] * half_range
        return np.clip(action, self.space.low, self.space.high).astype(self.space.dtype)


def record_rollouts(cfg: DictConfig, out_dir: Path) -> Path:
    """Record `record.episodes` episodes with the noisy policy into `<out_dir>/rollouts.npz` (recorder layout)."""
    rec = cfg.record
    env_kwargs = OmegaConf.to_container(rec.env_kwargs, resolve=True) if rec.env_kwargs else {}
    env = make_record_env(rec.env, rec.num_envs, env_kwargs, rec.frames, rec.get("max_episode_steps"))
    describes = hasattr(env, "describe")
    env.request_final_views(*(["frames"] if rec.frames else []), *(["text"] if describes else []))
    policy = NoisyPolicy(env, rec.checkpoint, resolve_device(cfg.device), cfg.seed, bool(rec.get("scripted", False)))
    print(f"recording {rec.episodes} episodes of {rec.env} into {out_dir} ...", flush=True)  # env and policy made
    levels = np.asarray(list(rec.noise) or [0.0], dtype=np.float64)
    n = env.num_envs
    episode_of = np.arange(n)  # each copy's current episode id; its noise is levels[id % len(levels)]
    next_episode, step_of = n, np.zeros(n, dtype=np.int64)
    open_rows: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    finished: list[dict[str, Any]] = []
    done_count = 0
    obs, _ = env.reset(seed=cfg.seed)
    placeholder = np.zeros((1, 1, 3), np.uint8)
    while done_count < rec.episodes:
        action = policy(obs, levels[episode_of % len(levels)])
        next_obs, reward, terminated, truncated, info = env.step(action)
        real_next = true_next_obs(next_obs, info)
        done = terminated | truncated
        final = info.get("final_info", {})
        success = np.where(done, final.get("is_success", np.zeros(n)), info.get("is_success", np.zeros(n)))
        frames = env.render() if rec.frames else None
        text = env.describe() if describes else [""] * n  # after the step; ended copies' are in final_text
        for i in range(n):
            pick = lambda x: {k: v[i] for k, v in x.items()} if isinstance(x, dict) else x[i]  # noqa: E731
            frame = placeholder if frames is None else (info["final_frames"][i] if done[i] else frames[i])
            open_rows[i].append({"obs": pick(obs), "next_obs": pick(real_next), "action": action[i],
                                 "reward": float(reward[i]), "terminated": bool(terminated[i]),
                                 "truncated": bool(truncated[i]), "is_success": bool(success[i]),
                                 "episode": int(episode_of[i]), "step": int(step_of[i]), "frame": frame,
                                 "text": str(info["final_text"][i] if done[i] and describes else text[i])})
            step_of[i] += 1
            if done[i]:
                if done_count < rec.episodes:
                    finished += open_rows[i]
                    done_count += 1
                open_rows[i], step_of[i] = [], 0
                episode_of[i], next_episode = next_episode, next_episode + 1
        obs = next_obs
    env.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "rollouts.npz"
    arrays = {**rows_to_arrays(finished), "env_id": np.array(env.spec.id if env.spec else rec.env),
              "fps": np.array(int(env.metadata.get("render_fps", 25)))}
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    return path


def rows_to_arrays(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Transition rows, episode after episode -> the recorder's arrays, episodes numbered 0.. in row order."""
    out: dict[str, np.ndarray] = {}
    for name in ("obs", "next_obs"):
        first = rows[0][name]
        if isinstance(first, dict):
            for key in first:
                values = [r[name][key] for r in rows]
                out[f"{name}.{key}"] = np.array(values, dtype=str) if isinstance(values[0], str) else np.stack(values)
        else:
            out[name] = np.stack([r[name] for r in rows])
    out["action"] = np.stack([np.asarray(r["action"]) for r in rows])
    for key, dtype in (("reward", np.float64), ("terminated", bool), ("truncated", bool), ("is_success", bool),
                       ("step", np.int64)):
        out[key] = np.array([r[key] for r in rows], dtype=dtype)
    ids = np.array([r["episode"] for r in rows])
    out["episode"] = np.r_[0, np.cumsum(np.diff(ids) != 0)]  # rows come episode by episode: number them 0..
    out["frames"] = np.stack([r["frame"] for r in rows]).astype(np.uint8)
    out["text"] = np.array([r["text"] for r in rows], dtype=str)
    return out


def numeric(obs: Any) -> Any:
    """The numeric leaves of a dict observation (what a preference reward model reads)."""
    if isinstance(obs, dict):
        return {k: v for k, v in obs.items() if np.asarray(v).dtype.kind in "biuf"}
    return obs


# --- offline goal datasets ---------------------------------------------------------------------------------
def is_goal_dataset(path: Path) -> bool:
    """Whether `path` is one `.npz` in the goal-dataset layout (crlab's or OGBench's) rather than a rollout file."""
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return {"observations", "actions", "terminals"} <= set(f.files)
    except (OSError, ValueError):
        return False  # load_rollouts names the bad file


def goal_dataset_rollouts(path: Path) -> Rollouts:
    """A goal dataset as rollouts with hindsight goals: each episode's `desired_goal` is the goal its last state
    achieves, the reward of a step minus the distance of the goal it reaches to that one (dense, potential-like)."""
    data = load_goal_dataset(path)
    bounds = episode_bounds(data["terminals"])
    lengths = bounds[:, 1] - bounds[:, 0]
    rows = np.concatenate([np.arange(a, b) for a, b in bounds])
    episode = np.repeat(np.arange(len(bounds)), lengths)
    goal = data["next_achieved_goals"][bounds[:, 1] - 1][episode]
    next_achieved = data["next_achieved_goals"][rows]
    reward = -np.linalg.norm(next_achieved - goal, axis=-1).astype(np.float64)
    obs = {"observation": data["observations"][rows], "achieved_goal": data["achieved_goals"][rows], "desired_goal": goal}
    next_obs = {"observation": data["next_observations"][rows], "achieved_goal": next_achieved, "desired_goal": goal}
    last = np.zeros(len(rows), bool)
    last[np.cumsum(lengths) - 1] = True
    arrays = {"action": data["actions"][rows], "reward": reward, "episode": episode,
              "step": np.concatenate([np.arange(n) for n in lengths]), "terminated": np.zeros(len(rows), bool),
              "truncated": last, "is_success": np.zeros(len(rows), bool),
              "frames": np.zeros((len(rows), 1, 1, 3), np.uint8), "text": np.full(len(rows), "")}
    env_id = str(data["env_id"]) if "env_id" in data else ""
    return Rollouts(arrays, obs, next_obs, [path], env_id)


# --- segments and labels ------------------------------------------------------------------------------------
def sample_segments(data: Rollouts, count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices (count, length) of random windows inside single episodes, uniform over all windows."""
    episode = data.arrays["episode"]
    starts = np.r_[0, np.flatnonzero(np.diff(episode)) + 1]
    lengths = np.diff(np.r_[starts, len(episode)])
    windows = np.maximum(lengths - length + 1, 0)
    if windows.sum() == 0:
        raise ValueError(f"no episode in the rollouts has {length} steps (longest: {lengths.max()}); "
                         "lower segment_length")
    chosen = rng.choice(len(starts), size=count, p=windows / windows.sum())
    offsets = (rng.random(count) * windows[chosen]).astype(np.int64)
    return (starts[chosen] + offsets)[:, None] + np.arange(length)


def take(x: Any, idx: np.ndarray) -> Any:
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def progress(reward: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """How much a segment raised the reward, r(last step) - r(first step), (P,): for dense rewards that are minus a
    distance, an advantage-like score that does not favour segments that merely start near the goal."""
    return torch.as_tensor(reward[rows[:, -1]] - reward[rows[:, 0]], dtype=torch.float32)


def label_pairs(cfg: DictConfig, data: Rollouts, rows_a: np.ndarray, rows_b: np.ndarray) -> torch.Tensor:
    """Labels (P,) in [0, 1] (1: segment a preferred) from the configured teacher."""
    teacher = SyntheticLabeler(beta=cfg.beta, error_rate=cfg.error_rate, tie_threshold=cfg.tie_threshold, seed=cfg.seed)
    reward = data.arrays["reward"]
    if cfg.labeler == "gold":
        if cfg.gold_score == "progress":  # r_last - r_first: the gain of a potential-like reward (e.g. -distance)
            return teacher.label_returns(progress(reward, rows_a), progress(reward, rows_b))
        return teacher({"reward": reward[rows_a]}, {"reward": reward[rows_b]})
    if cfg.labeler == "preference":
        if cfg.model is None:
            raise ValueError("labeler=preference needs model=FILE (a PreferenceRewardModel .safetensors)")
        model = PreferenceRewardModel.from_file(cfg.model, cfg.device)
        obs, next_obs = numeric(data.obs), numeric(data.next_obs)

        def returns(rows: np.ndarray) -> torch.Tensor:
            segments = {"obs": take(obs, rows), "action": data.arrays["action"][rows], "next_obs": take(next_obs, rows)}
            with torch.no_grad():
                return model.segment_returns(segments).mean(0).cpu()

        return teacher.label_returns(returns(rows_a), returns(rows_b))
    from rewards.clip import CLIPReward  # heavy (open_clip): only for this labeler
    from rewards.vlm_preference import CLIPFrameLabeler, VLMPreferenceTeacher

    frames = data.arrays["frames"]
    if frames.shape[1] < 8:
        raise ValueError("labeler=vlm_preference needs recorded frames; these rollouts have none (record.frames=true)")
    vlm = dict(cfg.vlm)
    task_text, tie_margin = vlm.pop("task_text"), vlm.pop("tie_margin", 0.0)
    clip = CLIPReward(task_text, **vlm, device=cfg.device)
    vlm_teacher = VLMPreferenceTeacher(CLIPFrameLabeler(clip, tie_margin), task_text)
    return vlm_teacher({"frames": frames[rows_a]}, {"frames": frames[rows_b]})


def make_preferences(cfg: DictConfig) -> Path:
    """Record (optionally), cut segments, label pairs, write the dataset; returns its path."""
    if cfg.labeler not in LABELERS:
        raise ValueError(f"labeler={cfg.labeler!r} is not one of {LABELERS}")
    check_keys(cfg, KEYS)
    check_keys(cfg.record, RECORD_KEYS, "record.")
    if cfg.error_rate > 1:
        raise ValueError(f"error_rate={cfg.error_rate} must be a probability in [0, 1]")
    resolve_device(cfg.device)  # a bad device name, before recording
    rollouts = Path(cfg.rollouts)
    if cfg.record.env is not None:
        record_rollouts(cfg, rollouts)
    data = goal_dataset_rollouts(rollouts) if is_goal_dataset(rollouts) else load_rollouts(rollouts)
    rng = np.random.default_rng(cfg.seed)
    rows = sample_segments(data, 2 * cfg.pairs, cfg.segment_length, rng)
    rows_a, rows_b = rows[: cfg.pairs], rows[cfg.pairs:]
    labels = label_pairs(cfg, data, rows_a, rows_b).numpy()
    obs = data.obs  # text leaves too (unicode arrays): text policies read them, the others skip them
    reward = data.arrays["reward"]
    out = Path(cfg.out) if cfg.out else rollouts.parent / f"{rollouts.stem}_{cfg.labeler}_prefs.npz"
    path = save_preference_dataset(
        out, take(obs, rows_a), data.arrays["action"][rows_a], take(obs, rows_b), data.arrays["action"][rows_b], labels,
        return_a=reward[rows_a].sum(1), return_b=reward[rows_b].sum(1), env_id=np.array(data.env_id),
        labeler=np.array(cfg.labeler))
    gap = reward[rows_a].sum(1) - reward[rows_b].sum(1)
    decided = (labels != 0.5) & (gap != 0)
    agreement = float(((labels > 0.5) == (gap > 0))[decided].mean()) if decided.any() else float("nan")
    print(f"{cfg.pairs} pairs of {cfg.segment_length}-step segments from {len(np.unique(data.arrays['episode']))} "
          f"episodes; ties {float((labels == 0.5).mean()):.2f}; agreement with the segments' return order {agreement:.2f}")
    return path


@hydra.main(config_path="conf", config_name="make_preferences", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from scripts.cli import user_errors

    with user_errors():
        path = make_preferences(cfg)
    print(f"dataset: {path}")


if __name__ == "__main__":
    from scripts.cli import start

    start(main, CONF, "make_preferences")
