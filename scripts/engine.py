"""The run engine: one loop for every way crlab trains (scripts.train, resume, sweep trials, the benchmarks).

    engine = Engine(hooks, total_steps, time_limit_s)
    source.drive(engine)      # repeats: engine.mark() -> one step of experience -> engine.after_step(step)

The cadence of a run is its declared hooks, called in order before each step (`at_mark`: evaluation, checkpoint;
`stop` is True once, at the end) and after it (`after_step`: preference feedback and reward relabelling, train
scalars, the progress bar). Only the experience source differs between agents:

- `EnvSource` (crl, curl, ppo): act -> env.step -> observe -> update, one vector step at a time;
- `DatasetSource` (cpl; crl, gcbc, gciql with agent.dataset): one `agent.update()` on the agent's dataset; a run
  counts gradient steps (`total_gradient_steps`, metrics.csv `gradient_steps`);
- `SB3Source` (sb3_*): SB3's `model.learn` collects and trains; its callback calls the same engine.

`train(cfg, run_dir)` builds a run from its config (scripts.run_setup) and drives it with the hooks of a training
run: metrics.csv rows, videos, checkpoints, TensorBoard scalars, resume from the latest checkpoint.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from agents import agent_loop, make_agent_config, resolve_device
from agents.base import RelabelsRewards, obs_to_tensor
from envs.batched import true_next_obs
from scripts.cli import check_env_id, check_run_config
from scripts.evaluate import evaluate, record_episodes
from scripts.run_log import RunLog, latest_checkpoint, peak_memory_mb, write_checkpoint
from scripts.run_setup import GROUPS, Built, agent_options, build_run


@dataclass
class Step:
    """What one step of an experience source produced: `steps` env steps (gradient steps offline), the agent's
    update scalars (tensors, read only when logged) and, from env steps, per-copy (N,) rewards and episode ends."""

    steps: int
    metrics: dict[str, Any] = field(default_factory=dict)
    reward: np.ndarray | None = None  # as learned from (a reward module's, with reward=NAME)
    gt_reward: np.ndarray | None = None  # the env's own
    done: np.ndarray | None = None


class Hook:
    """One part of a run's cadence. The engine calls `at_mark` before every step (and once more with stop=True at
    the end) and `after_step` after it; `wants_stop` lets a hook end the run (a benchmark's timed window)."""

    def at_mark(self, engine: Engine, stop: bool) -> None:
        pass

    def after_step(self, engine: Engine, step: Step) -> None:
        pass

    def wants_stop(self, engine: Engine) -> bool:
        return False

    def close(self) -> None:
        pass


class Engine:
    """Counts steps and wall clock, stops at `total_steps` or `time_limit_s` (counted over resumed segments through
    `wall_offset_s`), and calls its hooks in order."""

    def __init__(self, hooks: list[Hook], total_steps: int, time_limit_s: float | None = None, steps: int = 0,
                 wall_offset_s: float = 0.0) -> None:
        self.hooks, self.total_steps, self.time_limit_s, self.steps = hooks, total_steps, time_limit_s, steps
        self.start = time.perf_counter() - wall_offset_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def mark(self) -> bool:
        """Run the hooks' marks; False once the run is over (after the final marks)."""
        stop = (self.steps >= self.total_steps or bool(self.time_limit_s and self.elapsed() >= self.time_limit_s)
                or any(h.wants_stop(self) for h in self.hooks))
        for hook in self.hooks:
            hook.at_mark(self, stop)
        return not stop

    def after_step(self, step: Step) -> None:
        self.steps += step.steps
        for hook in self.hooks:
            hook.after_step(self, step)

    def close(self) -> None:
        for hook in self.hooks:
            hook.close()


# --- experience sources -------------------------------------------------------------------------------------------


class EnvSource:
    """Online experience: act -> env.step -> observe -> update, one vector step (N env steps) per engine step."""

    def __init__(self, agent: Any, env: Any, seed: int) -> None:
        self.agent, self.env, self.seed = agent, env, seed

    def drive(self, engine: Engine) -> None:
        agent, env, device = self.agent, self.env, self.agent.device
        tensor_io = getattr(env, "tensor_io", False)  # steps torch tensors (backend="mjx"): actions stay on the device
        obs, _ = env.reset(seed=self.seed + engine.steps)
        obs_t = obs_to_tensor(obs, device)
        while engine.mark():
            action = agent.act(obs_t)
            next_obs, reward, terminated, truncated, info = env.step(action if tensor_io else action.cpu().numpy())
            real_next_t = obs_to_tensor(true_next_obs(next_obs, info), device)
            reward_t = torch.as_tensor(reward, dtype=torch.float32, device=device)
            if tensor_io:  # the episode ends go to the host once per vector step ((N,) flags: the buffer's slots)
                terminated, truncated, reward = terminated.cpu().numpy(), truncated.cpu().numpy(), reward.cpu().numpy()
            agent.observe(obs_t, action, reward_t, real_next_t, terminated, truncated)
            obs_t = obs_to_tensor(next_obs, device)
            metrics = agent.update()
            engine.after_step(Step(env.num_envs, metrics, reward, info.get("gt_reward", reward), terminated | truncated))


class DatasetSource:
    """Offline experience (cpl): each engine step is one `agent.update()` on the agent's own dataset."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def drive(self, engine: Engine) -> None:
        while engine.mark():
            engine.after_step(Step(1, self.agent.update()))


class SB3Source:
    """SB3's `model.learn` collects and trains; an SB3 callback hands each of its vector steps to the engine."""

    def __init__(self, agent: Any, env: Any, seed: int, her_allowed: bool, log_dir: Path | None, resumed: bool) -> None:
        from stable_baselines3.common.logger import configure

        self.agent, self.resumed = agent, resumed
        self.venv = agent.bind(env, her_allowed=her_allowed)
        agent.model.set_random_seed(seed + agent.env_steps)
        self.venv.seed(seed + agent.env_steps)
        if log_dir is not None:
            agent.model.set_logger(configure(str(log_dir), ["tensorboard"]))

    def drive(self, engine: Engine) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        agent = self.agent

        class ToEngine(BaseCallback):
            def _on_training_start(self) -> None:
                self.running = engine.mark()

            def _on_step(self) -> bool:
                if not self.running:
                    return False
                reward, done, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
                gt = np.array([info.get("gt_reward", r) for info, r in zip(infos, reward)])
                engine.after_step(Step(agent.env_steps - engine.steps, {}, reward, gt, done))
                self.running = engine.mark()
                return self.running

        remaining = engine.total_steps - agent.env_steps
        if remaining > 0:
            agent.model.learn(total_timesteps=remaining, callback=ToEngine(), reset_num_timesteps=not self.resumed)
        else:
            engine.mark()


# --- the hooks of a training run ----------------------------------------------------------------------------------


class Evaluation(Hook):
    """Every `eval_every` steps (and at a stop between two): evaluation episodes -> a metrics.csv row, and videos.
    The untrained policy is evaluated first unless `eval_at_start` is false."""

    def __init__(self, cfg: DictConfig, built: Built, log: RunLog, run_dir: Path, steps: int, resumed: bool) -> None:
        self.cfg, self.built, self.log, self.run_dir = cfg, built, log, run_dir
        self.unit = log.step_column
        first = (steps // cfg.eval_every + 1) * cfg.eval_every
        self.next_eval = first if resumed or not cfg.get("eval_at_start", True) else 0
        self.last_eval = -1 if log.last_eval_step is None else log.last_eval_step
        self.last_success = float("nan")

    def at_mark(self, engine: Engine, stop: bool) -> None:
        steps, cfg = engine.steps, self.cfg
        if steps >= self.next_eval or (stop and self.last_eval != steps):  # a run stopped between evaluations ends with one
            row = {self.unit: steps, **evaluate(self.built.agent, self.built.eval_env, seed=cfg.seed + 10_000,
                                                  episodes=cfg.eval_episodes)}
            row["wall_time_s"] = engine.elapsed()
            row.update(peak_memory_mb())
            self.log.eval_row(row)
            if cfg.video_episodes > 0:
                record_episodes(self.built.agent, self.built.video_env, cfg.video_episodes, cfg.seed + 20_000,
                                self.run_dir / "videos" / f"eval_{steps:09d}")
            self.last_success, self.last_eval = row["eval_success_rate"], steps
            self.next_eval = (steps // cfg.eval_every + 1) * cfg.eval_every


class Checkpointing(Hook):
    """Every `checkpoint_every` steps and at the stop: an atomic checkpoint, and the online-learned reward model."""

    def __init__(self, cfg: DictConfig, built: Built, run_dir: Path, config_yaml: str, steps: int) -> None:
        self.cfg, self.built, self.run_dir, self.config_yaml = cfg, built, run_dir, config_yaml
        self.next_checkpoint = steps + cfg.checkpoint_every

    def at_mark(self, engine: Engine, stop: bool) -> None:
        steps = engine.steps
        if steps >= self.next_checkpoint or stop:
            write_checkpoint(self.run_dir, self.built.agent, steps, engine.elapsed(), self.config_yaml,
                             self.cfg.keep_checkpoints)
            if self.built.feedback is not None:
                self.built.reward_module.save(self.run_dir / "reward_model.safetensors")
            while self.next_checkpoint <= steps:
                self.next_checkpoint += self.cfg.checkpoint_every


class PreferenceFeedback(Hook):
    """When the reward module's feedback is due: a session of queries and reward-model updates; an agent that
    stores rewards has them relabelled by the new model (PEBBLE)."""

    def __init__(self, built: Built, log: RunLog) -> None:
        self.built, self.log = built, log

    def after_step(self, engine: Engine, step: Step) -> None:
        feedback, agent = self.built.feedback, self.built.agent
        if feedback.due(engine.steps):
            self.log.train_scalars(feedback.update(engine.steps), engine.steps)
            if isinstance(agent, RelabelsRewards):
                agent.relabel_rewards(self.built.reward_module.relabel)


class TrainScalars(Hook):
    """Every `every_s` seconds: the agent's last update scalars (one host sync per interval, not per step),
    env-steps/s and the mean return of the episodes finished since (ground truth, and the proxy with a reward
    module) to TensorBoard; the progress bar shows env-steps/s and the last evaluation's success."""

    def __init__(self, log: RunLog, every_s: float, proxy: bool, bar: tqdm | None = None,
                 evaluation: Evaluation | None = None) -> None:
        self.log, self.every_s, self.proxy, self.bar, self.evaluation = log, every_s, proxy, bar, evaluation
        self.rate_name = f"{log.step_column}_per_s"  # env_steps_per_s, or gradient_steps_per_s offline
        self.returns: np.ndarray | None = None  # (2, N) running proxy and ground-truth returns
        self.finished: list[tuple[float, float]] = []
        self.tick_steps: int | None = None
        self.tick_time = time.perf_counter()

    def after_step(self, engine: Engine, step: Step) -> None:
        if self.tick_steps is None:
            self.tick_steps = engine.steps - step.steps
        if step.done is not None:
            if self.returns is None:
                self.returns = np.zeros((2, len(step.done)))
            self.returns += (step.reward, step.gt_reward)
            self.finished += zip(*self.returns[:, step.done])
            self.returns[:, step.done] = 0.0
        if self.bar is not None:
            self.bar.update(step.steps)
        now = time.perf_counter()
        if now - self.tick_time < self.every_s:
            return
        sps = (engine.steps - self.tick_steps) / (now - self.tick_time)
        self.tick_steps, self.tick_time = engine.steps, now
        scalars = {k: float(v) for k, v in step.metrics.items()}
        if self.finished:
            proxy, gt = np.mean(self.finished, axis=0)
            scalars["gt_return"] = gt
            if self.proxy:
                scalars["proxy_return"] = proxy
            self.finished = []
        self.log.train_scalars({**scalars, self.rate_name: sps}, engine.steps)
        if self.bar is not None:
            success = self.evaluation.last_success if self.evaluation is not None else float("nan")
            self.bar.set_postfix(sps=f"{sps:,.0f}", success=f"{success:.2f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- a training run -----------------------------------------------------------------------------------------------


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


def source_for(loop: str, built: Built, cfg: DictConfig, run_dir: Path, resumed: bool) -> Any:
    """The experience source of an agent's loop kind (agents.agent_loop): online, offline or sb3."""
    if loop == "offline":
        return DatasetSource(built.agent)
    if loop == "sb3":
        return SB3Source(built.agent, built.env, cfg.seed, her_allowed=built.reward_module is None,
                         log_dir=run_dir / "tb" / "sb3", resumed=resumed)
    return EnvSource(built.agent, built.env, cfg.seed)


STEP_UNITS = {"online": "env_steps", "sb3": "env_steps", "offline": "gradient_steps"}


def step_unit(cfg: DictConfig) -> str:
    """What a run counts: `env_steps` (online, sb3) or `gradient_steps` (offline: agent.dataset, cpl)."""
    return STEP_UNITS[agent_loop(cfg.agent.name, agent_options(cfg))]


def run_length(cfg: DictConfig) -> int:
    """The steps a run trains for: total_env_steps online, total_gradient_steps offline."""
    return int(cfg.total_gradient_steps if step_unit(cfg) == "gradient_steps" else cfg.total_env_steps)


def check_step_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """An offline run configured with `total_env_steps` (gradient steps are not env steps) is refused, naming the
    key it counts; so is an online run given `total_gradient_steps`."""
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    offline = step_unit(cfg) == "gradient_steps"
    wrong, right = ("total_env_steps", "total_gradient_steps") if offline else ("total_gradient_steps", "total_env_steps")
    if wrong in given:
        kind = "an offline run (agent.dataset / cpl) takes gradient steps" if offline else "an online run takes env steps"
        raise ValueError(f"{wrong} does not apply: {kind}; set {right}=N")


def check_run(cfg: DictConfig, overrides: list[str] | tuple[str, ...] = ()) -> None:
    """ValueError naming the first bad value of a run config (run and env keys, agent options, the step key, the env
    id), before anything is built or written."""
    check_run_config(cfg)
    make_agent_config(cfg.agent.name, agent_options(cfg))
    check_step_keys(cfg, list(overrides))
    check_env_id(cfg.env.id)


def load_weights(built: Built, checkpoint: dict, run_dir: Path, overrides: list[str] | tuple[str, ...]) -> None:
    """The resumed run's weights into the agent just built; ValueError (the run's parts closed) when they do not fit,
    naming the agent options this invocation changed (`agent.hidden=[64,64]` on a run trained with [32,32])."""
    try:
        built.agent.load_state_dict(checkpoint["agent"])
    except (RuntimeError, KeyError) as err:
        built.close()
        changed = [o for o in overrides if o.lstrip("+").startswith("agent.")]
        first = str(err).strip().splitlines()
        detail = " ".join(first[1].split()) if len(first) > 1 else " ".join(str(err).split())
        raise ValueError(f"the checkpoint of {run_dir} does not fit the agent this config builds"
                         + (f" (changed here: {changed})" if changed else "") + f": {detail[:240]}") from err


def train(cfg: DictConfig, run_dir: Path, overrides: list[str] = ()) -> Path:
    """Run the training described by `cfg`, writing everything into `run_dir`; returns `run_dir`. With
    `resume=RUN_DIR` it continues that run from its latest checkpoint (`overrides`, the CLI's key=value list, may
    change plain keys: see `resumed_config`); the replay buffer is not saved and refills with the restored policy."""
    checkpoint = None
    if cfg.resume is not None:
        run_dir = Path(cfg.resume)
        checkpoint = latest_checkpoint(run_dir)
        cfg = resumed_config(checkpoint["config"], run_dir, list(overrides))
    check_run(cfg, overrides)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    loop = agent_loop(cfg.agent.name, agent_options(cfg))
    device = resolve_device(cfg.device)
    built = build_run(cfg, run_dir, checkpoint, device, offline=loop == "offline")
    if checkpoint is not None:
        load_weights(built, checkpoint, run_dir, overrides)
    # Written only now: building reads the dataset, makes the envs and the reward module, and a refusal there
    # (a missing or unreadable agent.dataset, weights that do not fit, ...) must leave the run directory as it was,
    # a resumed one included.
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_yaml)
    steps, wall_offset = 0, 0.0
    if checkpoint is not None:
        steps, wall_offset = int(checkpoint["env_steps"]), float(checkpoint["wall_time_s"])
        torch.set_rng_state(checkpoint["torch_rng"])
    resumed = checkpoint is not None
    source = source_for(loop, built, cfg, run_dir, resumed)

    extra = (() if built.reward_module is None else ("eval_proxy_return",)) + (("peak_gpu_mb",) if device.type == "cuda" else ())
    unit, total = step_unit(cfg), run_length(cfg)
    log = RunLog(run_dir, resume_from_step=steps if resumed else None, extra_columns=extra, step_column=unit)
    evaluation = Evaluation(cfg, built, log, run_dir, steps, resumed)
    bar = tqdm(total=total, initial=steps, unit=" " + unit.replace("_", " "), unit_scale=True, dynamic_ncols=True,
               disable=not cfg.progress)
    hooks: list[Hook] = [evaluation, Checkpointing(cfg, built, run_dir, config_yaml, steps)]
    if built.feedback is not None:
        hooks.append(PreferenceFeedback(built, log))
    hooks.append(TrainScalars(log, cfg.log_every_s, proxy=built.reward_module is not None, bar=bar, evaluation=evaluation))
    engine = Engine(hooks, total, cfg.time_limit_s, steps, wall_offset)
    try:
        source.drive(engine)
    finally:
        engine.close()
        log.close()
        built.close()
    return run_dir
