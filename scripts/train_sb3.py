"""The SB3 branch of `scripts.train` (`agent=sb3_ppo`, `agent=sb3_sac`): SB3's `model.learn` collects and trains;
a callback does what the online loop does at the same env-step marks.

    python -m scripts.train agent=sb3_sac env=reach        # HER on: reach is a GoalEnv
    python -m scripts.train agent=sb3_ppo env=reach env.kwargs.reward_type=dense env.num_envs=32

Same env (our batched vector env, reward wrappers included), same evaluation (`scripts.evaluate.evaluate`),
videos, metrics.csv, TensorBoard scalars (SB3's own under tb/sb3) and checkpoints (state dicts only, see
agents/sb3.py). A reward module's online feedback is applied as in the online loop, and after each session SB3's replay buffer
is relabelled with the new model (PEBBLE).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from agents.base import RelabelsRewards
from scripts.evaluate import evaluate, record_episodes
from scripts.run_log import RunLog, write_checkpoint
from scripts.run_setup import build_run


class RunCallback(BaseCallback):
    """Evaluation rows, videos, checkpoints, train scalars, preference feedback and the stop, at env-step marks."""

    def __init__(self, cfg: DictConfig, run_dir: Path, agent: Any, eval_env: Any, video_env: Any, log: RunLog,
                 feedback: Any, reward_module: Any, config_yaml: str, start: float) -> None:
        super().__init__()
        self.cfg, self.run_dir, self.agent, self.eval_env, self.video_env = cfg, run_dir, agent, eval_env, video_env
        self.log, self.feedback, self.reward_module, self.config_yaml, self.start = log, feedback, reward_module, config_yaml, start
        steps = agent.env_steps
        self.next_eval = (steps // cfg.eval_every + 1) * cfg.eval_every if steps else 0
        self.next_checkpoint = steps + cfg.checkpoint_every
        self.last_eval = -1 if log.last_eval_step is None else log.last_eval_step
        n = agent.num_envs
        self.proxy_return, self.gt_return = np.zeros(n), np.zeros(n)
        self.finished: list[tuple[float, float]] = []
        self.tick_steps, self.tick_time = steps, time.perf_counter()

    def _marks(self) -> bool:
        """Evaluate / checkpoint when due; False once the budget or the time limit is spent."""
        cfg, steps = self.cfg, self.agent.env_steps
        over_time = bool(cfg.time_limit_s) and time.perf_counter() - self.start >= cfg.time_limit_s
        stop = steps >= cfg.total_env_steps or over_time
        # a run stopped between evaluations (time limit, off-grid budget) ends with one, as scripts.train's loop
        if steps >= self.next_eval or (stop and self.last_eval != steps):
            row = {"env_steps": steps, **evaluate(self.agent, self.eval_env, seed=cfg.seed + 10_000)}
            row["wall_time_s"] = time.perf_counter() - self.start
            self.log.eval_row(row)
            if cfg.video_episodes > 0:
                record_episodes(self.agent, self.video_env, cfg.video_episodes, cfg.seed + 20_000,
                                self.run_dir / "videos" / f"eval_{steps:09d}")
            self.next_eval, self.last_eval = (steps // cfg.eval_every + 1) * cfg.eval_every, steps
        if steps >= self.next_checkpoint or stop:
            write_checkpoint(self.run_dir, self.agent, steps, time.perf_counter() - self.start, self.config_yaml,
                             cfg.keep_checkpoints)
            if self.feedback is not None:
                self.reward_module.save(self.run_dir / "reward_model.safetensors")
            while self.next_checkpoint <= steps:
                self.next_checkpoint += cfg.checkpoint_every
        return not stop

    def _on_training_start(self) -> None:
        self.running = self._marks()

    def _on_step(self) -> bool:
        if not self.running:
            return False
        reward, done, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        self.proxy_return += reward
        self.gt_return += np.array([info.get("gt_reward", r) for info, r in zip(infos, reward)])
        self.finished += zip(self.proxy_return[done], self.gt_return[done])
        self.proxy_return[done], self.gt_return[done] = 0.0, 0.0
        steps = self.agent.env_steps
        if self.feedback is not None and self.feedback.due(steps):
            self.log.train_scalars(self.feedback.update(steps), steps)
            if isinstance(self.agent, RelabelsRewards):  # PEBBLE: SB3's stored rewards follow the new model
                self.agent.relabel_rewards(self.reward_module.relabel)
        if time.perf_counter() - self.tick_time >= self.cfg.log_every_s:
            now = time.perf_counter()
            scalars = {"env_steps_per_s": (steps - self.tick_steps) / (now - self.tick_time)}
            self.tick_steps, self.tick_time = steps, now
            if self.finished:
                proxy, gt = np.mean(self.finished, axis=0)
                scalars["gt_return"] = gt
                if self.reward_module is not None:
                    scalars["proxy_return"] = proxy
                self.finished = []
            self.log.train_scalars(scalars, steps)
        self.running = self._marks()
        return self.running


def train_sb3(cfg: DictConfig, run_dir: Path, checkpoint: dict[str, Any] | None, device: torch.device,
              config_yaml: str) -> Path:
    """Train an SB3 agent on the configured env and reward; returns `run_dir`."""

    env, eval_env, video_env, reward_module, feedback, agent = build_run(cfg, run_dir, checkpoint, device)

    wall_offset = 0.0
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        wall_offset = float(checkpoint["wall_time_s"])
        torch.set_rng_state(checkpoint["torch_rng"])
    venv = agent.bind(env, her_allowed=reward_module is None)
    agent.model.set_random_seed(cfg.seed + agent.env_steps)
    venv.seed(cfg.seed + agent.env_steps)
    agent.model.set_logger(configure(str(run_dir / "tb" / "sb3"), ["tensorboard"]))
    log = RunLog(run_dir, resume_from_step=agent.env_steps if checkpoint is not None else None,
                 extra_columns=() if reward_module is None else ("eval_proxy_return",))
    callback = RunCallback(cfg, run_dir, agent, eval_env, video_env, log, feedback, reward_module, config_yaml,
                           time.perf_counter() - wall_offset)
    remaining = cfg.total_env_steps - agent.env_steps
    if remaining > 0:
        agent.model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=checkpoint is None)
    else:
        callback.init_callback(agent.model)
        callback.on_training_start(locals(), globals())
    log.close()
    for e in (venv, eval_env, video_env):
        e.close()
    return run_dir
