"""Train an agent: `python -m scripts.train agent=crl env=reach [key=value ...]`.

config -> vector env -> agent.act -> env.step -> agent.observe -> agent.update -> logs; every `eval_every` env
steps: evaluation episodes, a recorded video, a metrics.csv row and a checkpoint. `resume=RUN_DIR` continues a
run from its latest checkpoint (the replay buffer is not saved: it refills with the restored policy).

`reward=NAME` (scripts/conf/reward/) swaps the env's reward for a reward module's through
`rewards.wrapper.VectorRewardWrapper`; the ground truth stays in info["gt_reward"]. Then the log has both
`train/proxy_return` and `train/gt_return`, metrics.csv gains `eval_proxy_return` (evaluation success and
return stay ground truth), and an online-learned preference model is saved as RUN_DIR/reward_model.safetensors.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs  # noqa: F401  (registers crlab/ envs)
from agents import agent_loop, make_agent_config, resolve_device
from agents.base import RelabelsRewards, obs_to_tensor
from envs.batched import true_next_obs
from scripts.cli import check_overrides, check_run_config, check_run_paths, user_errors
from scripts.evaluate import evaluate, record_episodes
from scripts.run_log import RunLog, latest_checkpoint, write_checkpoint
from scripts.run_setup import agent_options, build_run, make_envs  # noqa: F401  (make_envs: imported from here by the benchmarks)
from scripts.train_offline import train_offline
from scripts.train_sb3 import train_sb3

# hydra.run.dir is the resumed run's directory when resume=RUN_DIR is given (see conf/train.yaml).
logging.getLogger("OpenGL").setLevel(logging.WARNING)
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume if resume else new, replace=True)


GROUPS = ("agent", "env", "reward")


def resumed_config(saved_yaml: str, run_dir: Path, overrides: list[str]) -> DictConfig:
    """The saved config of a run being resumed, with the plain `key=value` overrides of this invocation applied
    (e.g. a larger `total_env_steps`); agent / env / reward cannot change."""
    saved = OmegaConf.create(saved_yaml)
    plain = [o for o in overrides if not o.startswith(("resume=", "hydra."))]
    groups = [o.lstrip("+").split("=", 1) for o in plain if o.split("=", 1)[0].lstrip("+") in GROUPS]
    swapped = [f"{group}={name}" for group, name in groups if name != saved[group].name]
    if swapped:
        raise ValueError(f"cannot change {swapped} when resuming {run_dir}; start a new run instead")
    keys = [o.lstrip("+") for o in plain if o.split("=", 1)[0].lstrip("+") not in GROUPS]
    return OmegaConf.merge(saved, OmegaConf.from_dotlist(keys), {"resume": str(run_dir)})


def with_resumed_groups(argv: list[str]) -> list[str]:
    """With `resume=RUN_DIR`: the run's own agent / env / reward groups ahead of the CLI overrides, so that keys of
    its agent (say `agent.ent_coef` of a ppo run) are valid; otherwise `argv` unchanged."""
    resume = next((a.split("=", 1)[1] for a in argv if a.startswith("resume=")), None)
    saved = Path(resume) / "config.yaml" if resume else None
    if saved is None or not saved.is_file():
        return argv
    cfg = OmegaConf.load(saved)
    return [f"{group}={cfg[group].name}" for group in GROUPS if group in cfg] + argv


def train(cfg: DictConfig, run_dir: Path, overrides: list[str] = ()) -> Path:
    """Run the training loop described by `cfg`, writing everything into `run_dir`; returns `run_dir`.
    `overrides` (the CLI's key=value list) only matters with `resume=RUN_DIR`: see `resumed_config`."""
    checkpoint = None
    if cfg.resume is not None:
        run_dir = Path(cfg.resume)
        checkpoint = latest_checkpoint(run_dir)
        cfg = resumed_config(checkpoint["config"], run_dir, list(overrides))
    check_run_config(cfg)
    make_agent_config(cfg.agent.name, agent_options(cfg))  # agent options checked before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(config_yaml)

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    loop = agent_loop(cfg.agent.name)
    if loop != "online":  # cpl learns from a dataset, SB3 agents inside model.learn: their loops live beside this one
        return {"offline": train_offline, "sb3": train_sb3}[loop](cfg, run_dir, checkpoint, device, config_yaml)
    env, eval_env, video_env, reward_module, feedback, agent = build_run(cfg, run_dir, checkpoint, device)
    reward_path = run_dir / "reward_model.safetensors"

    env_steps, wall_offset = 0, 0.0
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        env_steps, wall_offset = int(checkpoint["env_steps"]), float(checkpoint["wall_time_s"])
        torch.set_rng_state(checkpoint["torch_rng"])
    log = RunLog(run_dir, resume_from_step=env_steps if checkpoint is not None else None,
                 extra_columns=() if reward_module is None else ("eval_proxy_return",))
    start = time.perf_counter() - wall_offset
    next_eval = (env_steps // cfg.eval_every + 1) * cfg.eval_every if checkpoint is not None else 0
    next_checkpoint = env_steps + cfg.checkpoint_every
    last_success = float("nan")
    proxy_return, gt_return = np.zeros(env.num_envs), np.zeros(env.num_envs)
    finished_returns: list[tuple[float, float]] = []  # (proxy, ground truth) of episodes since the last log

    obs, _ = env.reset(seed=cfg.seed + env_steps)
    obs_t = obs_to_tensor(obs, device)
    bar = tqdm(total=cfg.total_env_steps, initial=env_steps, unit="step", dynamic_ncols=True, disable=not cfg.progress)
    tick_steps, tick_time = env_steps, time.perf_counter()
    last_eval = -1 if log.last_eval_step is None else log.last_eval_step
    while True:
        stop = env_steps >= cfg.total_env_steps or bool(cfg.time_limit_s and time.perf_counter() - start >= cfg.time_limit_s)
        if env_steps >= next_eval or (stop and last_eval != env_steps):  # a run stopped between evaluations ends with one
            row = {"env_steps": env_steps, **evaluate(agent, eval_env, seed=cfg.seed + 10_000)}
            row["wall_time_s"] = time.perf_counter() - start
            log.eval_row(row)
            if cfg.video_episodes > 0:
                record_episodes(agent, video_env, cfg.video_episodes, cfg.seed + 20_000, run_dir / "videos" / f"eval_{env_steps:09d}")
            last_success, last_eval = row["eval_success_rate"], env_steps
            next_eval = (env_steps // cfg.eval_every + 1) * cfg.eval_every
        if env_steps >= next_checkpoint or stop:
            write_checkpoint(run_dir, agent, env_steps, time.perf_counter() - start, config_yaml, cfg.keep_checkpoints)
            if feedback is not None:
                reward_module.save(reward_path)
            next_checkpoint += cfg.checkpoint_every
        if stop:
            break

        action = agent.act(obs_t)
        next_obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
        real_next_t = obs_to_tensor(true_next_obs(next_obs, info), device)
        agent.observe(obs_t, action, torch.as_tensor(reward, device=device), real_next_t, terminated, truncated)
        obs_t = obs_to_tensor(next_obs, device)
        metrics = agent.update()
        env_steps += env.num_envs
        bar.update(env.num_envs)

        proxy_return += reward
        gt_return += info.get("gt_reward", reward)
        done = terminated | truncated
        finished_returns += zip(proxy_return[done], gt_return[done])
        proxy_return[done], gt_return[done] = 0.0, 0.0
        if feedback is not None and feedback.due(env_steps):
            log.train_scalars(feedback.update(env_steps), env_steps)
            if isinstance(agent, RelabelsRewards):  # PEBBLE: stored rewards follow the new model
                agent.relabel_rewards(reward_module.relabel)

        if time.perf_counter() - tick_time >= cfg.log_every_s:
            now = time.perf_counter()
            sps = (env_steps - tick_steps) / (now - tick_time)
            tick_steps, tick_time = env_steps, now
            scalars = {k: float(v) for k, v in metrics.items()}  # one host sync per log interval, not per step
            if finished_returns:
                proxy, gt = np.mean(finished_returns, axis=0)
                scalars["gt_return"] = gt
                if reward_module is not None:
                    scalars["proxy_return"] = proxy
                finished_returns = []
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
        run_dir = train(cfg, Path(HydraConfig.get().runtime.output_dir), list(HydraConfig.get().overrides.task))
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    check_run_paths(sys.argv[1:])
    sys.argv[1:] = with_resumed_groups(sys.argv[1:])
    check_overrides(Path(__file__).parent / "conf", "train", sys.argv[1:])
    main()
