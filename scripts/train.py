"""Train an agent: `python -m scripts.train agent=crl env=reach [key=value ...]`.

config -> vector env -> agent.act -> env.step -> agent.observe -> agent.update -> logs; every `eval_every` env
steps: evaluation episodes, a recorded video, a metrics.csv row and a checkpoint. `resume=RUN_DIR` continues a
run from its latest checkpoint (the replay buffer is not saved: it refills with the restored policy).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from pathlib import Path

import gymnasium
import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs  # noqa: F401  (registers crlab/ envs)
from agents import make_agent, resolve_device
from agents.base import obs_to_tensor
from scripts.cli import check_overrides, user_errors
from scripts.evaluate import evaluate, record_episodes
from scripts.run_log import RunLog, latest_checkpoint, write_checkpoint

# hydra.run.dir is the resumed run's directory when resume=RUN_DIR is given (see conf/train.yaml).
logging.getLogger("OpenGL").setLevel(logging.WARNING)
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume if resume else new, replace=True)


def true_next_obs(next_obs: dict | np.ndarray, info: dict) -> dict | np.ndarray:
    """With same-step autoreset, rows of finished copies hold the next episode's first observation; put back the
    real last observation from `info["final_obs"]`."""
    if "final_obs" not in info:
        return next_obs
    done = info["_final_obs"]
    if isinstance(next_obs, dict):
        return {k: np.where(done.reshape(-1, *[1] * (v.ndim - 1)), info["final_obs"][k], v) for k, v in next_obs.items()}
    return np.where(done.reshape(-1, *[1] * (next_obs.ndim - 1)), info["final_obs"], next_obs)


def make_envs(cfg: DictConfig, num_envs: int, render_mode: str | None = None) -> gymnasium.vector.VectorEnv:
    kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True)
    return gymnasium.make_vec(cfg.env.id, num_envs=num_envs, max_episode_steps=cfg.env.max_episode_steps, **kwargs)


def train(cfg: DictConfig, run_dir: Path) -> Path:
    """Run the training loop described by `cfg`, writing everything into `run_dir`; returns `run_dir`."""
    checkpoint = None
    if cfg.resume is not None:
        run_dir = Path(cfg.resume)
        checkpoint = latest_checkpoint(run_dir)
        cfg = OmegaConf.merge(OmegaConf.create(checkpoint["config"]), {"resume": str(run_dir)})
    run_dir.mkdir(parents=True, exist_ok=True)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(config_yaml)

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    env = make_envs(cfg, cfg.env.num_envs)
    eval_env = make_envs(cfg, cfg.eval_episodes)
    video_env = gymnasium.make(cfg.env.id, render_mode="rgb_array", **OmegaConf.to_container(cfg.env.kwargs, resolve=True))
    agent = make_agent(cfg.agent.name, {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items() if k != "name"},
                       env.single_observation_space, env.single_action_space, env.num_envs, cfg.env.max_episode_steps, device)

    env_steps, wall_offset = 0, 0.0
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        env_steps, wall_offset = int(checkpoint["env_steps"]), float(checkpoint["wall_time_s"])
        torch.set_rng_state(checkpoint["torch_rng"])
    log = RunLog(run_dir, resume_from_step=env_steps if checkpoint is not None else None)
    start = time.perf_counter() - wall_offset
    next_eval = (env_steps // cfg.eval_every + 1) * cfg.eval_every if checkpoint is not None else 0
    next_checkpoint = env_steps + cfg.checkpoint_every
    last_success = float("nan")

    obs, _ = env.reset(seed=cfg.seed + env_steps)
    obs_t = obs_to_tensor(obs, device)
    bar = tqdm(total=cfg.total_env_steps, initial=env_steps, unit="step", dynamic_ncols=True, disable=not cfg.progress)
    tick_steps, tick_time = env_steps, time.perf_counter()
    while True:
        if env_steps >= next_eval:
            row = {"env_steps": env_steps, **evaluate(agent, eval_env, seed=cfg.seed + 10_000)}
            row["wall_time_s"] = time.perf_counter() - start
            log.eval_row(row)
            if cfg.video_episodes > 0:
                record_episodes(agent, video_env, cfg.video_episodes, cfg.seed + 20_000, run_dir / "videos" / f"eval_{env_steps:09d}")
            last_success = row["eval_success_rate"]
            next_eval += cfg.eval_every
        if env_steps >= next_checkpoint or env_steps >= cfg.total_env_steps:
            write_checkpoint(run_dir, agent, env_steps, time.perf_counter() - start, config_yaml, cfg.keep_checkpoints)
            next_checkpoint += cfg.checkpoint_every
        if env_steps >= cfg.total_env_steps or (cfg.time_limit_s and time.perf_counter() - start >= cfg.time_limit_s):
            break

        action = agent.act(obs_t)
        next_obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
        real_next_t = obs_to_tensor(true_next_obs(next_obs, info), device)
        agent.observe(obs_t, action, torch.as_tensor(reward, device=device), real_next_t, terminated, truncated)
        obs_t = obs_to_tensor(next_obs, device)
        metrics = agent.update()
        env_steps += env.num_envs
        bar.update(env.num_envs)

        if time.perf_counter() - tick_time >= cfg.log_every_s:
            now = time.perf_counter()
            sps = (env_steps - tick_steps) / (now - tick_time)
            tick_steps, tick_time = env_steps, now
            scalars = {k: float(v) for k, v in metrics.items()}  # one host sync per log interval, not per step
            log.train_scalars({**scalars, "env_steps_per_s": sps}, env_steps)
            bar.set_postfix(sps=f"{sps:,.0f}", success=f"{last_success:.2f}")
    bar.close()
    log.close()
    for e in (env, eval_env, video_env):
        e.close()
    return run_dir


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors():
        run_dir = train(cfg, Path(HydraConfig.get().runtime.output_dir))
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    check_overrides(Path(__file__).parent / "conf", "train", sys.argv[1:])
    main()
