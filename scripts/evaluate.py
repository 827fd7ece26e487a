"""Evaluation episodes: success rate and return over a vector env, and recorded episodes through the recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gymnasium
import numpy as np

from agents.base import obs_to_tensor
from envs.recorder import RolloutRecorder


def evaluate(agent: Any, env: gymnasium.vector.VectorEnv, seed: int, episodes: int | None = None) -> dict[str, float]:
    """Run `episodes` deterministic episodes (default: one per copy of `env`), in rounds of `env.num_envs` (episode
    k is seeded `seed + k`); mean final-step success and mean return.

    Behind a reward wrapper (info["gt_reward"]) the return stays the env's own, and `eval_proxy_return` is added.
    """
    n = env.num_envs
    episodes = n if episodes is None else episodes
    rows = [run_round(agent, env, seed + start) for start in range(0, episodes, n)]
    take = lambda key: np.concatenate([r[key] for r in rows])[:episodes]  # noqa: E731
    row = {"eval_success_rate": float(take("success").mean()), "eval_return": float(take("return").mean())}
    if all("proxy_return" in r for r in rows):
        row["eval_proxy_return"] = float(take("proxy_return").mean())
    return row


def run_round(agent: Any, env: gymnasium.vector.VectorEnv, seed: int) -> dict[str, np.ndarray]:
    """One deterministic episode in each copy: per-copy final-step success, return and (with a reward module)
    proxy return, each (N,)."""
    n = env.num_envs
    obs, _ = env.reset(seed=seed)
    returns, proxy_returns, success = np.zeros(n), np.zeros(n), np.zeros(n)
    running = np.ones(n, dtype=bool)
    while running.any():
        action = agent.act(obs_to_tensor(obs, agent.device), deterministic=True).cpu().numpy()
        obs, reward, terminated, truncated, info = env.step(action)
        returns += info.get("gt_reward", reward) * running
        proxy_returns += reward * running
        done = (terminated | truncated) & running
        if done.any():
            final = info.get("final_info", info)
            success[done] = np.asarray(final.get("is_success", np.zeros(n)))[done]
            running &= ~done
    out = {"success": success, "return": returns}
    if "gt_reward" in info:
        out["proxy_return"] = proxy_returns
    return out


def record_episodes(agent: Any, env: gymnasium.Env, episodes: int, seed: int, stem: Path) -> tuple[Path, Path]:
    """Play `episodes` deterministic episodes of an agent in a single rgb_array env; write `<stem>.mp4` and
    `<stem>.npz`."""
    def act(obs: Any) -> np.ndarray:
        batch = {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[None]
        return agent.act(obs_to_tensor(batch, agent.device), deterministic=True)[0].cpu().numpy()

    return record_policy(act, env, episodes, seed, stem)


def record_policy(policy: Callable[[Any], Any], env: gymnasium.Env, episodes: int, seed: int,
                  stem: Path) -> tuple[Path, Path]:
    """Play `episodes` episodes of `policy` (one observation -> one action) in a single rgb_array env, reset with
    seeds seed, seed + 1, ...; write `<stem>.mp4` and `<stem>.npz` (envs/recorder.py)."""
    recorder = RolloutRecorder(env)
    for episode in range(episodes):
        obs, _ = recorder.reset(seed=seed + episode)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = recorder.step(policy(obs))
            done = terminated or truncated
    return recorder.save(stem)
