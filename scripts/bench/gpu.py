"""Training throughput of crl, ppo, curl and cpl on one device, in one call:

    python -m scripts.bench.gpu [--device cuda] [--agents crl ppo curl cpl] [--seconds 60] [--out bench_gpu.json]

Setups beyond the default four: crl_gpu (+preset=gpu: 4x1024 nets, batch 1024, 1,024 copies), and with the mjx
extra crl_mjx (crl's setup on MuJoCo XLA copies: env, buffer and update on one device) and crl_gpu_mjx (4,096).

Per agent: the env and agent of `scripts.train` (the agent's usual env, overrides below), then `--warmup-s` seconds
of act -> env.step -> observe -> update (the run engine's online source, with a timing hook instead of the
evaluation / logging ones), then `--seconds` timed; cpl (offline) runs its dataset updates the same way, on
segment preferences of random reach rollouts made first (scripts.make_preferences, 64 episodes, 2,000 pairs).
Reported: env-steps/s of that loop (cpl: none) and gradient updates/s within it, plus the card's name
(torch.cuda.get_device_name). `--device cpu` runs the same on the CPU (tests, or a CPU baseline).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from agents import resolve_device
from scripts.bench import add_record_args, write_results
from scripts.engine import DatasetSource, Engine, EnvSource, Hook, Step
from scripts.run_log import peak_memory_mb
from scripts.run_setup import agent_from_config, build_offline, compose_config, make_envs

# scripts.train overrides per agent: GPU-sized batches of copies; warm-ups short enough for a timed window
SETUPS: dict[str, list[str]] = {
    "crl": ["agent=crl", "env=reach", "env.num_envs=256", "agent.warmup_steps=2560"],
    "ppo": ["agent=ppo", "env=reach", "env.kwargs.reward_type=dense", "env.num_envs=256"],
    "curl": ["agent=curl", "env=dmc_cartpole_swingup", "env.num_envs=4", "agent.warmup_steps=200",
             "agent.buffer_size=20_000"],
    "cpl": ["agent=cpl", "env=reach"],
    # crl's setup with the training copies on MuJoCo XLA (the mjx extra): env, buffer and update on one device
    "crl_mjx": ["agent=crl", "env=reach", "env.backend=mjx", "env.num_envs=256", "agent.warmup_steps=2560"],
}
SETUPS["crl_gpu"] = ["agent=crl", "env=reach", "+preset=gpu", "agent.warmup_steps=10240"]  # JaxGCRL-sized, 1,024 copies
SETUPS["crl_gpu_mjx"] = [*SETUPS["crl_gpu"], "env.backend=mjx", "env.num_envs=4096", "agent.warmup_steps=40960"]
NEEDS_EXTRA = {"crl_mjx", "crl_gpu_mjx"}  # not in the default --agents: they need the mjx extra


def gradient_steps(agent: Any, vector_steps_learning: int) -> int:
    """Gradient steps an agent has taken: its own counter where it keeps one (curl: num_updates; ppo: iterations x
    epochs x minibatches), else updates_per_step per vector step after warm-up (crl)."""
    if hasattr(agent, "num_updates"):
        return int(agent.num_updates)
    if hasattr(agent, "iteration"):
        return agent.iteration * agent.cfg.update_epochs * agent.cfg.num_minibatches
    return vector_steps_learning * agent.cfg.updates_per_step


class TimedWindow(Hook):
    """Opens a window once `warmup_s` seconds have passed and the agent's warm-up steps are done, and stops the
    run `seconds` later; env steps and gradient steps are read at both ends (CUDA synchronised first)."""

    def __init__(self, agent: Any, device: torch.device, warmup_s: float, seconds: float) -> None:
        self.agent, self.device, self.warmup_s, self.seconds = agent, device, warmup_s, seconds
        self.warmup_steps = getattr(agent.cfg, "warmup_steps", 0)
        self.learning_steps = 0  # vector steps taken after the warm-up
        self.opened: dict[str, float] = {}
        self.closed: dict[str, float] = {}

    def after_step(self, engine: Engine, step: Step) -> None:
        self.learning_steps += engine.steps > self.warmup_steps

    def _read(self, engine: Engine) -> dict[str, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return {"time": time.perf_counter(), "env_steps": engine.steps,
                "updates": gradient_steps(self.agent, self.learning_steps)}

    def wants_stop(self, engine: Engine) -> bool:
        if not self.opened and engine.elapsed() >= self.warmup_s and engine.steps >= self.warmup_steps:
            self.opened = self._read(engine)
        if self.opened and time.perf_counter() - self.opened["time"] >= self.seconds:
            self.closed = self._read(engine)
            return True
        return False


def reach_preferences(seed: int, folder: Path) -> Path:
    """A preference dataset in `folder` for the cpl measurement: random reach rollouts, 2,000 pairs of 25-step
    segments."""
    from scripts.make_preferences import make_preferences

    return make_preferences(compose_config("make_preferences", [
        f"rollouts={folder / 'reach'}", "record.env=reach", "record.env_kwargs={reward_type: dense}",
        "record.episodes=64", "record.num_envs=16", "pairs=2000", "gold_score=progress", f"seed={seed}"]))


def measure(name: str, overrides: list[str], device: str, seconds: float, warmup_s: float, seed: int) -> dict[str, Any]:
    """env-steps/s and updates/s of agent `name` over `seconds` after `warmup_s` of the same loop."""
    mine = [o.split(":", 1)[1] for o in overrides if o.startswith(f"{name}:")]
    common = [o for o in overrides if ":" not in o.split("=", 1)[0]]
    cfg = compose_config("train", [*SETUPS[name], f"device={device}", f"seed={seed}", *common, *mine])
    with tempfile.TemporaryDirectory(prefix="bench_gpu_cpl_") as scratch:  # the cpl dataset, removed after
        if cfg.agent.name == "cpl" and cfg.agent.dataset is None:
            cfg.agent.dataset = str(reach_preferences(seed, Path(scratch)))
        torch.manual_seed(seed)
        dev = resolve_device(cfg.device)
        offline = bool(cfg.agent.get("dataset"))
        if offline:  # the agent and its dataset as scripts.train builds them
            built = build_offline(cfg, dev)
            agent, envs, source = built.agent, [built.eval_env, built.video_env], DatasetSource(built.agent)
        else:
            env = make_envs(cfg, cfg.env.num_envs, backend=cfg.env.get("backend", "mujoco"))
            agent = agent_from_config(cfg, env.single_observation_space, env.single_action_space, env.num_envs, dev)
            envs, source = [env], EnvSource(agent, env, seed)
        window = TimedWindow(agent, dev, warmup_s, seconds)
        source.drive(Engine([window], total_steps=sys.maxsize))
        for env in envs:
            env.close()
    opened, closed = window.opened, window.closed
    elapsed = closed["time"] - opened["time"]
    return {"env": cfg.env.name, "num_envs": int(cfg.env.num_envs), "seconds": elapsed,
            "env_steps_per_s": float("nan") if offline else (closed["env_steps"] - opened["env_steps"]) / elapsed,
            "updates_per_s": (closed["updates"] - opened["updates"]) / elapsed, **peak_memory_mb()}


def measure_mjx(copies: int, seconds: float, device: torch.device, seed: int) -> dict[str, Any]:
    """env-steps/s of `gymnasium.make_vec("crlab/Reach-v0", num_envs=copies, backend="mjx")` under uniform random
    torch actions made on `device` (handed over through DLPack), after one untimed step (the jit compile)."""
    import gymnasium
    import jax

    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=copies, backend="mjx")
    env.reset(seed=seed)
    g = torch.Generator(device).manual_seed(seed)
    begin = time.perf_counter()
    obs, *_ = env.step(torch.rand(copies, 2, device=device, generator=g) * 2 - 1)
    compile_s = time.perf_counter() - begin
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, *_ = env.step(torch.rand(copies, 2, device=device, generator=g) * 2 - 1)
        steps += 1
    float(obs["observation"].sum())  # wait for the device
    elapsed = time.perf_counter() - start
    env.close()
    return {"env": "crlab/Reach-v0 backend=mjx", "num_envs": copies, "jax_device": str(jax.devices()[0]),
            "first_step_s": compile_s, "seconds": elapsed, "env_steps_per_s": steps * copies / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--agents", nargs="*", default=[n for n in SETUPS if n not in NEEDS_EXTRA], choices=list(SETUPS))
    parser.add_argument("--seconds", type=float, default=60.0, help="timed window per agent")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="untimed seconds first (and past any warm-up steps)")
    parser.add_argument("--override", action="append", default=[], help="extra scripts.train override, for every agent or one (NAME:key=value); repeatable")
    parser.add_argument("--mjx-copies", type=int, nargs="*", default=[],
                        help="also time reach on MuJoCo XLA (backend=mjx, the mjx extra) at these copy counts, e.g. 4096")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU torch threads (default: torch's, all cores; 1 when other jobs share the machine)")
    add_record_args(parser, default_out="bench_gpu.json")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({card}), torch {torch.__version__}", flush=True)
    results: dict[str, Any] = {}
    for name in args.agents:
        print(f"{name}: {args.warmup_s:.0f} s warm-up + {args.seconds:.0f} s ...", flush=True)
        results[name] = measure(name, args.override, str(device), args.seconds, args.warmup_s, args.seed)
        r = results[name]
        gpu = f", peak GPU {r['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in r else ""
        print(f"  {r['env']} x{r['num_envs']}: {r['env_steps_per_s']:,.0f} env-steps/s, {r['updates_per_s']:,.1f} updates/s, "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB (process so far){gpu}", flush=True)
    for copies in args.mjx_copies:
        r = results[f"mjx_reach_x{copies}"] = measure_mjx(copies, args.seconds, device, args.seed)
        print(f"mjx reach x{copies} on {r['jax_device']}: {r['env_steps_per_s']:,.0f} env-steps/s "
              f"(first step, jit compile included: {r['first_step_s']:.1f} s)", flush=True)
    write_results(args.out, args, None, {"torch_device": str(device), "card": card}, results, device=str(device))


if __name__ == "__main__":
    main()
