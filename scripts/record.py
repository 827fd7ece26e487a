"""Record rollouts: of a trained agent, `python -m scripts.record checkpoint=PATH episodes=N`, or of a reference
policy, `python -m scripts.record env=NAME policy=random|scripted|noisy episodes=N` (the usual first data for
evaluating reward modules: `scripts.eval_rewards rollouts=...`).

Writes `<out>.mp4` and `<out>.npz` (the rollout layout of `envs.recorder`), by default under `videos/`.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers crlab/ envs)
from agents import resolve_device
from agents.checkpoint import load_checkpoint
from envs.scripted import noisy_policy, random_policy, scripted_policy
from scripts.cli import ENV_KEYS, check_env_id, check_keys, start, user_errors
from scripts.evaluate import record_episodes, record_policy
from scripts.run_setup import agent_from_config

POLICIES = ("random", "scripted", "noisy")
KEYS = {"episodes": ("int > 0", False), "seed": ("int >= 0", False), "noise": ("number >= 0", False)}


def record(checkpoint_path: Path, episodes: int, seed: int, device: str, out: Path | None) -> tuple[Path, Path]:
    """Rebuild env and agent from the checkpoint's own config; record `episodes` deterministic episodes."""
    state = load_checkpoint(checkpoint_path)
    cfg = OmegaConf.create(state["config"])
    torch.manual_seed(seed)
    env_kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True)
    env = gymnasium.make(cfg.env.id, render_mode="rgb_array", **env_kwargs)
    agent = agent_from_config(cfg, env.observation_space, env.action_space, 1, resolve_device(device))
    agent.load_state_dict(state["agent"])
    if out is None:
        run_name = checkpoint_path.resolve().parent.parent.name
        out = Path("videos") / f"{run_name}_step{state['env_steps']}"
    paths = record_episodes(agent, env, episodes, seed, out)
    env.close()
    return paths


def record_reference(env_cfg: DictConfig, policy_name: str, noise: float, episodes: int, seed: int,
                     out: Path | None) -> tuple[Path, Path]:
    """Record `episodes` episodes of a random, scripted or noisy-scripted policy in the env of `env_cfg`."""
    if policy_name not in POLICIES:
        raise ValueError(f"policy={policy_name!r} is not one of {list(POLICIES)}")
    if policy_name == "noisy" and not noise >= 0:
        raise ValueError(f"noise={noise} must be >= 0")
    kwargs = OmegaConf.to_container(env_cfg.kwargs, resolve=True)
    env = gymnasium.make(env_cfg.id, render_mode="rgb_array", max_episode_steps=env_cfg.max_episode_steps, **kwargs)
    try:
        if policy_name == "random":
            policy = random_policy(env.action_space, seed)
        else:
            policy = scripted_policy(env)
            if policy_name == "noisy":
                policy = noisy_policy(policy, env.action_space, noise, np.random.default_rng(seed))
        out = out or Path("videos") / f"{env_cfg.name}_{policy_name}"
        return record_policy(policy, env, episodes, seed, out)
    finally:
        env.close()


def check_record_config(cfg: DictConfig) -> None:
    """ValueError naming the first bad value of scripts/conf/record.yaml's keys, before anything is built."""
    if (cfg.checkpoint is None) == (cfg.policy is None):
        raise ValueError("give either checkpoint=PATH or env=NAME policy=random|scripted|noisy "
                         f"(got checkpoint={cfg.checkpoint}, policy={cfg.policy})")
    check_keys(cfg, KEYS)
    resolve_device(cfg.device)
    if cfg.get("env") is not None:
        check_keys(cfg.env, ENV_KEYS, "env.")
        check_env_id(cfg.env.id)


@hydra.main(config_path="conf", config_name="record", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors():
        check_record_config(cfg)
        out = Path(cfg.out) if cfg.out else None
        if cfg.checkpoint is not None:
            video, rollout = record(Path(cfg.checkpoint), cfg.episodes, cfg.seed, cfg.device, out)
        else:
            if cfg.get("env") is None:
                raise ValueError(f"policy={cfg.policy} needs env=NAME (a scripts/conf/env/ config)")
            video, rollout = record_reference(cfg.env, cfg.policy, cfg.noise, cfg.episodes, cfg.seed, out)
    print(f"video: {video}\nrollout: {rollout}")


if __name__ == "__main__":
    start(main, Path(__file__).parent / "conf", "record")
