"""Training throughput of crl, ppo and curl on one device, in one call:

    python -m scripts.bench_gpu [--device cuda] [--agents crl ppo curl] [--seconds 60] [--out bench_gpu.json]

Per agent: the env and agent of `scripts.train` (the agent's usual env, overrides below), then `--warmup-s` seconds
of act -> env.step -> observe -> update (the loop of scripts.train without evaluation or logging), then
`--seconds` timed. Reported: env-steps/s of that loop and gradient updates/s within it, plus the card's name
(torch.cuda.get_device_name). `--device cpu` runs the same on the CPU (tests, or a CPU baseline).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir

import envs  # noqa: F401  (registers crlab/ envs)
from agents import make_agent, resolve_device
from agents.base import obs_to_tensor
from envs.batched import true_next_obs
from scripts.run_setup import agent_options
from scripts.train import make_envs

CONF = Path(__file__).resolve().parent / "conf"
# scripts.train overrides per agent: GPU-sized batches of copies; warm-ups short enough for a timed window
SETUPS: dict[str, list[str]] = {
    "crl": ["agent=crl", "env=reach", "env.num_envs=256", "agent.warmup_steps=2560"],
    "ppo": ["agent=ppo", "env=reach", "env.kwargs.reward_type=dense", "env.num_envs=256"],
    "curl": ["agent=curl", "env=dmc_cartpole_swingup", "env.num_envs=4", "agent.warmup_steps=200",
             "agent.buffer_size=20_000"],
}


def gradient_steps(agent: Any, vector_steps_learning: int) -> int:
    """Gradient steps an agent has taken: its own counter where it keeps one (curl: num_updates; ppo: iterations x
    epochs x minibatches), else updates_per_step per vector step after warm-up (crl)."""
    if hasattr(agent, "num_updates"):
        return int(agent.num_updates)
    if hasattr(agent, "iteration"):
        return agent.iteration * agent.cfg.update_epochs * agent.cfg.num_minibatches
    return vector_steps_learning * agent.cfg.updates_per_step


def measure(name: str, overrides: list[str], device: str, seconds: float, warmup_s: float, seed: int) -> dict[str, Any]:
    """env-steps/s and updates/s of agent `name` over `seconds` after `warmup_s` of the same loop."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        mine = [o.split(":", 1)[1] for o in overrides if o.startswith(f"{name}:")]
        common = [o for o in overrides if ":" not in o.split("=", 1)[0]]
        cfg = compose("train", overrides=[*SETUPS[name], f"device={device}", f"seed={seed}", *common, *mine])
    torch.manual_seed(seed)
    dev = resolve_device(cfg.device)
    env = make_envs(cfg, cfg.env.num_envs)
    options = agent_options(cfg)
    agent = make_agent(name, options, env.single_observation_space, env.single_action_space, env.num_envs,
                       cfg.env.max_episode_steps, dev)
    warmup = getattr(agent.cfg, "warmup_steps", 0)
    obs, _ = env.reset(seed=seed)
    obs_t = obs_to_tensor(obs, dev)
    env_steps, learning_steps = 0, 0
    mark: dict[str, float] = {}
    start = time.perf_counter()
    while True:
        now = time.perf_counter()
        if not mark and now - start >= warmup_s and env_steps >= warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            now = time.perf_counter()
            mark = {"time": now, "env_steps": env_steps, "updates": gradient_steps(agent, learning_steps)}
        if mark and now - mark["time"] >= seconds:
            break
        action = agent.act(obs_t)
        next_obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
        agent.observe(obs_t, action, torch.as_tensor(reward, dtype=torch.float32, device=dev),
                      obs_to_tensor(true_next_obs(next_obs, info), dev), terminated, truncated)
        obs_t = obs_to_tensor(next_obs, dev)
        agent.update()
        env_steps += env.num_envs
        learning_steps += env_steps > warmup
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elapsed = time.perf_counter() - mark["time"]
    env.close()
    return {"env": cfg.env.name, "num_envs": int(cfg.env.num_envs), "seconds": elapsed,
            "env_steps_per_s": (env_steps - mark["env_steps"]) / elapsed,
            "updates_per_s": (gradient_steps(agent, learning_steps) - mark["updates"]) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--agents", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--seconds", type=float, default=60.0, help="timed window per agent")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="untimed seconds first (and past any warm-up steps)")
    parser.add_argument("--override", action="append", default=[], help="extra scripts.train override, for every agent or one (NAME:key=value); repeatable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_gpu.json", help="JSON output file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({card}), torch {torch.__version__}", flush=True)
    results: dict[str, Any] = {}
    for name in args.agents:
        print(f"{name}: {args.warmup_s:.0f} s warm-up + {args.seconds:.0f} s ...", flush=True)
        results[name] = measure(name, args.override, str(device), args.seconds, args.warmup_s, args.seed)
        r = results[name]
        print(f"  {r['env']} x{r['num_envs']}: {r['env_steps_per_s']:,.0f} env-steps/s, {r['updates_per_s']:,.1f} updates/s",
              flush=True)
    with open(args.out, "w") as f:
        json.dump({"device": str(device), "card": card, "torch": torch.__version__, "config": vars(args),
                   "results": results}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
