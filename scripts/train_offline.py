"""The offline branch of `scripts.train`, for agents that learn from a dataset (`cpl`): no env step is learned from.

    python -m scripts.train agent=cpl env=reach agent.dataset=PREFS.npz total_env_steps=20000 eval_every=2000

Each iteration is one `agent.update()` (a minibatch of segment pairs). For these runs `total_env_steps`,
`eval_every` and `checkpoint_every` count gradient steps, and metrics.csv's `env_steps` column holds the gradient
step of each evaluation. Evaluation episodes, videos, checkpoints and resume are those of the online loop.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium
import torch
from omegaconf import DictConfig, OmegaConf

from agents import make_agent
from agents.preference_dataset import load_preference_dataset
from scripts.evaluate import evaluate, record_episodes
from scripts.run_log import RunLog, write_checkpoint
from scripts.run_setup import agent_options, make_envs


def train_offline(cfg: DictConfig, run_dir: Path, checkpoint: dict[str, Any] | None, device: torch.device,
                  config_yaml: str) -> Path:
    """Run `total_env_steps` dataset updates of `cfg.agent`, evaluating every `eval_every`; returns `run_dir`."""

    reward_name = (cfg.get("reward") or {"name": "none"})["name"]
    if reward_name != "none":
        raise ValueError(f"agent={cfg.agent.name} learns offline from its dataset's labels; reward={reward_name} does not apply")
    if not cfg.agent.get("dataset"):
        raise ValueError(f"agent={cfg.agent.name} needs agent.dataset=FILE (make one with python -m scripts.make_preferences)")
    data = load_preference_dataset(cfg.agent.dataset)
    eval_env = make_envs(cfg, cfg.eval_episodes)
    video_env = gymnasium.make(cfg.env.id, render_mode="rgb_array", **OmegaConf.to_container(cfg.env.kwargs, resolve=True))
    options = agent_options(cfg)
    agent = make_agent(cfg.agent.name, options, eval_env.single_observation_space, eval_env.single_action_space,
                       eval_env.num_envs, cfg.env.max_episode_steps, device)
    agent.set_dataset(data)

    steps, wall_offset = 0, 0.0
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        steps, wall_offset = int(checkpoint["env_steps"]), float(checkpoint["wall_time_s"])
        torch.set_rng_state(checkpoint["torch_rng"])
    log = RunLog(run_dir, resume_from_step=steps if checkpoint is not None else None)
    start = time.perf_counter() - wall_offset
    next_eval = (steps // cfg.eval_every + 1) * cfg.eval_every if checkpoint is not None else 0
    next_checkpoint = steps + cfg.checkpoint_every
    tick = time.perf_counter()
    while True:
        if steps >= next_eval:
            row = {"env_steps": steps, **evaluate(agent, eval_env, seed=cfg.seed + 10_000)}
            row["wall_time_s"] = time.perf_counter() - start
            log.eval_row(row)
            if cfg.video_episodes > 0:
                record_episodes(agent, video_env, cfg.video_episodes, cfg.seed + 20_000, run_dir / "videos" / f"eval_{steps:09d}")
            next_eval += cfg.eval_every
        if steps >= next_checkpoint or steps >= cfg.total_env_steps:
            write_checkpoint(run_dir, agent, steps, time.perf_counter() - start, config_yaml, cfg.keep_checkpoints)
            next_checkpoint += cfg.checkpoint_every
        if steps >= cfg.total_env_steps or (cfg.time_limit_s and time.perf_counter() - start >= cfg.time_limit_s):
            break
        metrics = agent.update()
        steps += 1
        if time.perf_counter() - tick >= cfg.log_every_s:
            tick = time.perf_counter()
            log.train_scalars({k: float(v) for k, v in metrics.items()}, steps)
    log.close()
    eval_env.close()
    video_env.close()
    return run_dir
