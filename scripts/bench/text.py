"""Policies on the text games: `python -m scripts.bench.text --parts ppo cpl text_policies [--out FILE]`.

    ppo            crlab's PPO on each text bandit (numeric observation views) vs the oracle's and a random policy's return
    cpl            CPL on gold preferences between random one-step segments of FlightPreference vs random
    text_policies  PPO (FlightPreference, InstructionFeedback) and CPL (FlightPreference) reading the text with the
                   bundled sentence encoder (agent.text_encoder=minilm) instead of the numeric views
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium
import numpy as np
import torch

import envs  # noqa: F401  (registers crlab/ envs)
from agents import make_agent
from agents.base import obs_to_tensor
from agents.preference_dataset import load_preference_dataset
from envs.text_game import NumericView
from scripts.bench import add_record_args, machine_info, write_results
from scripts.bench.ppo import run_online
from scripts.engine import DatasetSource, Engine
from scripts.run_setup import compose_config

CPU = torch.device("cpu")
TEXT_ENVS = ("crlab/FlightPreference-v0", "crlab/Negotiation-v0", "crlab/InstructionFeedback-v0")


def mean_return(env: gymnasium.vector.VectorEnv, policy: Callable[[Any], np.ndarray], episodes: int, seed: int) -> float:
    """Mean undiscounted return of `episodes` episodes (all copies run until each finished one episode, repeated)."""
    returns: list[float] = []
    rounds = 0
    while len(returns) < episodes:
        obs, _ = env.reset(seed=seed + 1000 * rounds)
        total, running = np.zeros(env.num_envs), np.ones(env.num_envs, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += reward * running
            running &= ~(terminated | truncated)
        returns += total.tolist()
        rounds += 1
    return float(np.mean(returns[:episodes]))


def ppo_text(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for env_id in TEXT_ENVS:
        env = NumericView(gymnasium.make_vec(env_id, num_envs=64))
        torch.manual_seed(args.seed)
        agent = make_agent("ppo", {"num_steps": 32, "num_minibatches": 4, "hidden": [256, 256], "discount": 0.99,
                                   "ent_coef": 0.01, "lr": 1e-3, "total_env_steps": args.text_steps},
                           env.single_observation_space, env.single_action_space, env.num_envs, 10, CPU)
        run_online(agent, env, args.text_steps, args.seed)
        greedy = lambda obs: agent.act(obs_to_tensor(obs, CPU), deterministic=True).numpy()  # noqa: E731
        name = env_id.split("/")[1].removesuffix("-v0")
        ppo = mean_return(env, greedy, 1000, args.seed + 1)
        oracle = mean_return(env, lambda obs: env.unwrapped.oracle_actions(), 1000, args.seed + 1)
        random = mean_return(env, lambda obs: env.action_space.sample(), 1000, args.seed + 1)
        # the oracle knows the hidden reward; from the observations alone, picking the options whose features the
        # instruction / feedback mention is a reference policy for what is learnable (InstructionFeedback only)
        results[name] = {"ppo": ppo, "oracle": oracle, "random": random,
                         "ppo_over_oracle": ppo / oracle if oracle else float("nan"), "env_steps": args.text_steps}
        if env_id == "crlab/InstructionFeedback-v0":
            mentioned = lambda obs: np.argmax(np.einsum("nkf,nf->nk", obs["features"], obs["language"][:, :10]), 1)  # noqa: E731
            results[name]["language_greedy"] = mean_return(env, mentioned, 1000, args.seed + 1)
        env.close()
    return results


def cpl_text(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    from scripts.make_preferences import make_preferences

    prefs_cfg = compose_config("make_preferences", [
        f"rollouts={out_dir / 'flight_rollouts'}", "record.env=crlab/FlightPreference-v0", "record.episodes=4000",
        "record.num_envs=64", f"pairs={args.cpl_text_pairs}", "segment_length=1", f"seed={args.seed}"])
    data = load_preference_dataset(make_preferences(prefs_cfg))
    env = NumericView(gymnasium.make_vec("crlab/FlightPreference-v0", num_envs=64))
    torch.manual_seed(args.seed)
    agent = make_agent("cpl", {"hidden": [256, 256], "alpha": 1.0, "lr": 1e-3}, env.single_observation_space,
                       env.single_action_space, env.num_envs, 1, CPU)
    agent.set_dataset(data)
    DatasetSource(agent).drive(Engine([], total_steps=args.cpl_text_updates))
    greedy = lambda obs: agent.act(obs_to_tensor(obs, CPU), deterministic=True).numpy()  # noqa: E731
    out = {"cpl": mean_return(env, greedy, 1000, args.seed + 1),
           "oracle": mean_return(env, lambda obs: env.unwrapped.oracle_actions(), 1000, args.seed + 1),
           "random": mean_return(env, lambda obs: env.action_space.sample(), 1000, args.seed + 1),
           "pairs": int(len(data["label"])), "updates": args.cpl_text_updates}
    env.close()
    return out


def text_policies(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """PPO and CPL reading the text (agent.text_encoder=minilm) instead of the numeric views."""
    from scripts.make_preferences import make_preferences

    results: dict[str, Any] = {}
    for env_id in ("crlab/FlightPreference-v0", "crlab/InstructionFeedback-v0"):
        env = gymnasium.make_vec(env_id, num_envs=16)
        torch.manual_seed(args.seed)
        agent = make_agent("ppo", {"num_steps": 32, "num_minibatches": 4, "hidden": [256, 256], "discount": 0.99,
                                   "ent_coef": 0.01, "lr": 1e-3, "total_env_steps": args.text_policy_steps,
                                   "text_encoder": "minilm"},
                           env.single_observation_space, env.single_action_space, env.num_envs, 10, CPU)
        start = time.perf_counter()
        run_online(agent, env, args.text_policy_steps, args.seed)
        greedy = lambda obs: agent.act(obs_to_tensor(obs, CPU), deterministic=True).numpy()  # noqa: E731
        name = env_id.split("/")[1].removesuffix("-v0")
        results[f"ppo_{name}"] = {
            "ppo": mean_return(env, greedy, 500, args.seed + 1),
            "oracle": mean_return(env, lambda obs: env.unwrapped.oracle_actions(), 500, args.seed + 1),
            "random": mean_return(env, lambda obs: env.action_space.sample(), 500, args.seed + 1),
            "env_steps": args.text_policy_steps, "train_s": time.perf_counter() - start}
        env.close()

    prefs_cfg = compose_config("make_preferences", [
        f"rollouts={out_dir / 'flight_rollouts_text'}", "record.env=crlab/FlightPreference-v0",
        "record.episodes=4000", "record.num_envs=64", f"pairs={args.cpl_text_pairs}", "segment_length=1",
        f"seed={args.seed}"])
    data = load_preference_dataset(make_preferences(prefs_cfg))
    env = gymnasium.make_vec("crlab/FlightPreference-v0", num_envs=64)
    torch.manual_seed(args.seed)
    agent = make_agent("cpl", {"hidden": [256, 256], "alpha": 1.0, "lr": 1e-3, "text_encoder": "minilm"},
                       env.single_observation_space, env.single_action_space, env.num_envs, 1, CPU)
    agent.set_dataset(data)
    DatasetSource(agent).drive(Engine([], total_steps=args.cpl_text_updates))
    greedy = lambda obs: agent.act(obs_to_tensor(obs, CPU), deterministic=True).numpy()  # noqa: E731
    results["cpl_FlightPreference"] = {
        "cpl": mean_return(env, greedy, 500, args.seed + 1),
        "oracle": mean_return(env, lambda obs: env.unwrapped.oracle_actions(), 500, args.seed + 1),
        "random": mean_return(env, lambda obs: env.action_space.sample(), 500, args.seed + 1),
        "pairs": int(len(data["label"])), "updates": args.cpl_text_updates}
    env.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--text-steps", type=int, default=150_000, help="ppo: env steps per game")
    parser.add_argument("--cpl-text-pairs", type=int, default=3000)
    parser.add_argument("--cpl-text-updates", type=int, default=3000)
    parser.add_argument("--text-policy-steps", type=int, default=20_000,
                        help="text_policies: PPO env steps per game (the sentence encoder runs every step)")
    add_record_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = Path(tempfile.mkdtemp(prefix="bench_text_"))
    results = {part: PARTS[part](args, out_dir) for part in args.parts}
    for part, numbers in results.items():
        for name, row in numbers.items():
            print(f"{part:<14} {name:<28} " + ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in (row.items() if isinstance(row, dict) else [("", row)])))
    write_results(args.out, args, out_dir, machine_info(), results)


PARTS = {"ppo": ppo_text, "cpl": cpl_text, "text_policies": text_policies}


if __name__ == "__main__":
    main()
