"""What same-step and next-step autoreset cost crlab's online loop: `python -m scripts.bench.autoreset [--out FILE]`.

The loop of `scripts.engine.EnvSource` without the agent, on `crlab/Reach-v0` with uniform random actions: step,
then, in same-step mode, `true_next_obs` (the real last observation of each copy whose episode ended); in next-step
mode, the step after an episode end is that copy's reset and yields no transition, so a loop must drop it. For each
number of copies, both modes alternate in one process (`--repeats` timings each, the median reported), with the
share of env steps that give a usable transition. The note docs/notes/autoreset.md quotes the record.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium
import numpy as np

import envs  # noqa: F401  (registers crlab/ envs)
from envs.batched import true_next_obs
from scripts.bench import add_record_args, machine_info, write_results

MODES = ("same_step", "next_step")


def loop_rate(env: gymnasium.vector.VectorEnv, mode: str, vector_steps: int, seed: int) -> tuple[float, float]:
    """(vector steps / s, share of env steps that give a transition) over `vector_steps` steps of the loop."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(env.action_space.low, env.action_space.high,
                          (vector_steps, *env.action_space.shape)).astype(env.action_space.dtype)
    env.reset(seed=seed)
    ended = np.zeros(env.num_envs, dtype=bool)
    usable = 0
    start = time.perf_counter()
    for action in actions:
        next_obs, _, terminated, truncated, info = env.step(action)
        if mode == "same_step":
            true_next_obs(next_obs, info)
            usable += env.num_envs
        else:  # a copy that ended last step was reset by this one: no transition from it
            usable += int((~ended).sum())
        ended = terminated | truncated
    elapsed = time.perf_counter() - start
    return vector_steps / elapsed, usable / (vector_steps * env.num_envs)


def measure(env_id: str, copies: list[int], vector_steps: list[int], repeats: list[int],
            seed: int) -> list[dict[str, Any]]:
    rows = []
    for num_envs, steps, reps in zip(copies, vector_steps, repeats):
        vecs = {mode: gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                                         autoreset_mode=mode) for mode in MODES}
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        shares: dict[str, float] = {}
        for rep in range(reps):  # interleaved, so a change in the machine's load touches both modes alike
            for mode in MODES:
                rate, shares[mode] = loop_rate(vecs[mode], mode, steps, seed + rep)
                rates[mode].append(rate)
        for env in vecs.values():
            env.close()
        row = {"copies": num_envs, "vector_steps": steps, "repeats": reps,
               "same_step_vector_steps_per_s": statistics.median(rates["same_step"]),
               "next_step_vector_steps_per_s": statistics.median(rates["next_step"]),
               "next_step_usable_share": shares["next_step"]}
        print(f"{num_envs:>4} copies: same step {row['same_step_vector_steps_per_s']:,.0f} vector steps/s, next step "
              f"{row['next_step_vector_steps_per_s']:,.0f} ({row['next_step_usable_share']:.3f} of env steps usable)",
              flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="crlab/Reach-v0")
    parser.add_argument("--copies", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--vector-steps", type=int, nargs="+", default=[5_000, 3_000, 2_000],
                        help="vector steps per timing, one per --copies")
    parser.add_argument("--repeats", type=int, nargs="+", default=[5, 5, 3], help="timings per mode, one per --copies")
    parser.add_argument("--seed", type=int, default=0)
    add_record_args(parser)
    args = parser.parse_args(argv)
    for name in ("vector_steps", "repeats"):
        if len(getattr(args, name)) != len(args.copies):
            parser.error(f"--{name.replace('_', '-')} gives {len(getattr(args, name))} values for "
                         f"{len(args.copies)} --copies; give one per number of copies")
    rows = measure(args.env, args.copies, args.vector_steps, args.repeats, args.seed)
    write_results(args.out, args, None, machine_info(), {"env": args.env, "loop": rows})


if __name__ == "__main__":
    main()
