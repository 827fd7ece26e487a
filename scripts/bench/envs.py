"""Environment throughput: `python -m scripts.bench.envs [--envs ID ...|--suites] [--num-envs 64] [--render] [--out FILE]`.

For each env id, env-steps/s of one `gymnasium.make` env, of the batched vector env (`vector_entry_point`: all
copies stepped by one call), of `SyncVectorEnv` over single envs and of `AsyncVectorEnv` (one process per copy,
shared memory), on the same number of random-action steps after a warm-up, best of `--repeats` timings. `--suites`
measures the standard-suite envs (Fetch, mazes, MetaWorld) instead of crlab's own. `--render` adds rgb_array frames/s of one env at 84x84, and for the
MuJoCo envs (PIXEL_ENVS) env-steps/s with 84x84 pixel observations, single and batched.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any, Callable

import gymnasium

import envs  # noqa: F401  (registers crlab/ envs)
from scripts.bench import add_record_args, write_results

DEFAULT_ENVS = ["crlab/Reach-v0", "crlab/Push-v0"]
DEFAULT_ENVS += ["crlab/FlightPreference-v0", "crlab/Negotiation-v0", "crlab/InstructionFeedback-v0"]
DEFAULT_ENVS += [f"crlab/DMC-{task}-v0" for task in ("cartpole-swingup", "reacher-easy", "cheetah-run", "walker-walk",
                                                     "finger-spin", "ball_in_cup-catch")]  # pixels: render every step
SUITE_ENVS = [f"crlab/Fetch{t}-v0" for t in ("Reach", "Push", "PickAndPlace", "Slide")]
SUITE_ENVS += [f"crlab/{m}-v0" for m in ("PointMaze-UMaze", "PointMaze-Medium", "PointMaze-Large", "AntMaze-UMaze")]
SUITE_ENVS += [f"crlab/{form}-{t}-v0" for t in ("bin-picking", "button-press-topdown", "door-open", "drawer-open",
                                                 "plate-slide", "sweep-into", "push") for form in ("MetaWorld",)]
SUITE_ENVS += ["crlab/MetaWorldGoal-push-v0"]
# id prefix -> max copies: each dm_control copy holds its own GL context; a suite copy is a whole suite env, and
# AsyncVectorEnv needs a process for each
SLOW_ENV_COPIES = {"crlab/DMC-": 8, "crlab/Fetch": 8, "crlab/PointMaze": 8, "crlab/AntMaze": 8, "crlab/MetaWorld": 8}
RENDER_SIZE = 84


def best_rate(step: Callable[[Any], None], actions: list[Any], steps_per_call: int, repeats: int) -> float:
    """Best-of-`repeats` env-steps/s of calling `step(a)` for each pre-sampled action in `actions`."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for a in actions:
            step(a)
        best = max(best, len(actions) * steps_per_call / (time.perf_counter() - start))
    return best


def single_env_rate(env_id: str, steps: int, warmup: int, repeats: int, seed: int) -> float:
    """Env-steps/s of one `gymnasium.make` env, resetting when an episode ends."""
    env = gymnasium.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)

    def step(action: Any) -> None:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    for _ in range(warmup):
        step(env.action_space.sample())
    rate = best_rate(step, [env.action_space.sample() for _ in range(steps)], 1, repeats)
    env.close()
    return rate


def vector_env_rate(env_id: str, num_envs: int, mode: str, steps: int, warmup: int, repeats: int, seed: int) -> float | None:
    """Env-steps/s of `gymnasium.make_vec(env_id, num_envs, vectorization_mode=mode)`; None if the env has no such form."""
    if mode == "vector_entry_point" and gymnasium.spec(env_id).vector_entry_point is None:
        return None
    kwargs = {"vector_kwargs": {"shared_memory": True}} if mode == "async" else {}
    env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(max(1, warmup // num_envs)):
        env.step(env.action_space.sample())
    actions = [env.action_space.sample() for _ in range(max(1, steps // num_envs))]
    rate = best_rate(env.step, actions, num_envs, repeats)  # both vector forms autoreset themselves
    env.close()
    return rate


def render_rate(env_id: str, frames: int, repeats: int, seed: int) -> float:
    """Frames/s of step + `render()` of one rgb_array env at 84x84 where the env takes a size (what a pixel agent
    pays per step)."""
    try:
        env = gymnasium.make(env_id, render_mode="rgb_array", width=RENDER_SIZE, height=RENDER_SIZE)
    except TypeError:  # text games draw at their own fixed size
        env = gymnasium.make(env_id, render_mode="rgb_array")
    env.reset(seed=seed)
    env.action_space.seed(seed)

    def step(action: Any) -> None:
        _, _, terminated, truncated, _ = env.step(action)
        env.render()
        if terminated or truncated:
            env.reset()

    for _ in range(min(frames, 20)):
        step(env.action_space.sample())
    rate = best_rate(step, [env.action_space.sample() for _ in range(frames)], 1, repeats)
    env.close()
    return rate


PIXEL_ENVS = ["crlab/Reach-v0", "crlab/Push-v0"]  # MuJoCo envs that take the pixel options of envs/pixels.py
PIXEL_ENVS += SUITE_ENVS
PIXEL_KWARGS = {"obs_type": "pixels", "image_size": RENDER_SIZE, "frame_stack": 3}


def pixel_obs_rate(env_id: str, num_envs: int | None, frames: int, repeats: int, seed: int) -> float:
    """Env-steps/s with 84x84 pixel observations (one frame rendered per copy per step, so also frames/s), of one
    env (`num_envs=None`) or of the batched vector env, whose copies are rendered one after another."""
    if num_envs is None:
        env, n = gymnasium.make(env_id, **PIXEL_KWARGS), 1

        def step(action: Any) -> None:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
    else:
        env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **PIXEL_KWARGS)
        step, n = env.step, num_envs  # autoresets itself
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(max(1, 20 // n)):
        step(env.action_space.sample())
    rate = best_rate(step, [env.action_space.sample() for _ in range(max(1, frames // n))], n, repeats)
    env.close()
    return rate


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS, help="Gymnasium env ids (default: %(default)s)")
    parser.add_argument("--suites", action="store_true", help="measure the standard-suite envs (SUITE_ENVS)")
    parser.add_argument("--forms", nargs="+", default=["single", "batched", "sync", "async"],
                        choices=["single", "batched", "sync", "async"], help="which forms to time")
    parser.add_argument("--num-envs", type=int, default=64, help="copies in each vector env")
    parser.add_argument("--steps", type=int, default=25_600, help="env steps per timing (same for every form)")
    parser.add_argument("--max-seconds", type=float, default=4.0,
                        help="cap each timing at about this long: slow (pixel) envs get fewer steps")
    parser.add_argument("--warmup", type=int, default=1_280, help="env steps before timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per form; the best is reported")
    parser.add_argument("--render", action="store_true", help="also measure rgb_array frames/s at 84x84")
    parser.add_argument("--render-frames", type=int, default=500, help="frames per render timing")
    parser.add_argument("--pixel-num-envs", type=int, default=16, help="copies in each pixel-observation vector env")
    parser.add_argument("--seed", type=int, default=0)
    add_record_args(parser)
    args = parser.parse_args()
    if args.suites:
        args.envs = SUITE_ENVS

    results = []
    for env_id in args.envs:
        num_envs = min([args.num_envs] + [cap for prefix, cap in SLOW_ENV_COPIES.items() if env_id.startswith(prefix)])
        probe = single_env_rate(env_id, 20, warmup=2, repeats=1, seed=args.seed)
        steps = max(num_envs, min(args.steps, int(probe * args.max_seconds)) // num_envs * num_envs)
        timing = dict(warmup=min(args.warmup, steps // 4), repeats=args.repeats, seed=args.seed)
        row: dict[str, Any] = {"env_id": env_id, "num_envs": num_envs, "steps": steps}
        forms = {"single": None, "batched": "vector_entry_point", "sync": "sync", "async": "async"}
        for form, mode in forms.items():
            rate = None
            if form in args.forms:
                rate = (single_env_rate(env_id, steps, **timing) if mode is None
                        else vector_env_rate(env_id, num_envs, mode, steps, **timing))
            row[f"{form}_steps_per_s"] = rate
        batched, sync, async_ = row["batched_steps_per_s"], row["sync_steps_per_s"], row["async_steps_per_s"]
        row["batched_over_sync"] = None if batched is None or sync is None else batched / sync
        row["batched_over_async"] = None if batched is None or async_ is None else batched / async_
        if args.render:
            row["render_frames_per_s"] = render_rate(env_id, args.render_frames, args.repeats, args.seed)
        results.append(row)
    pixel_results = []
    if args.render:
        for env_id in [e for e in args.envs if e in PIXEL_ENVS]:
            timing = dict(frames=args.render_frames, repeats=args.repeats, seed=args.seed)
            single = pixel_obs_rate(env_id, None, **timing)
            batched = pixel_obs_rate(env_id, args.pixel_num_envs, **timing)
            pixel_results.append({"env_id": env_id, **PIXEL_KWARGS, "single_frames_per_s": single,
                                  "batched_frames_per_s": batched})

    machine = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "mujoco_gl": os.environ.get("MUJOCO_GL")}
    print(f"\nenv steps/s, best of {args.repeats}; {machine['processor']}, {machine['cpu_count']} CPUs")
    header = (f"{'env':<34} {'copies':>6} {'steps':>7} {'single':>10} {'batched':>10} {'sync':>10} {'async':>10} "
              f"{'batched/sync':>13} {'batched/async':>14}")
    if args.render:
        header += f" {'render fps':>11}"
    print(header + "\n" + "-" * len(header))
    for r in results:
        ratios = ["n/a" if r[k] is None else f"{r[k]:.1f}x" for k in ("batched_over_sync", "batched_over_async")]
        line = (f"{r['env_id']:<34} {r['num_envs']:>6} {r['steps']:>7} {fmt(r['single_steps_per_s']):>10} "
                f"{fmt(r['batched_steps_per_s']):>10} {fmt(r['sync_steps_per_s']):>10} "
                f"{fmt(r['async_steps_per_s']):>10} {ratios[0]:>13} {ratios[1]:>14}")
        if args.render:
            line += f" {fmt(r['render_frames_per_s']):>11}"
        print(line)
    if pixel_results:
        print(f"\npixel observations {PIXEL_KWARGS}: env steps/s = frames/s (one frame per copy per step); "
              f"batched: num_envs={args.pixel_num_envs}")
        header = f"{'env':<30} {'single':>10} {'batched':>10}"
        print(header + "\n" + "-" * len(header))
        for r in pixel_results:
            print(f"{r['env_id']:<30} {fmt(r['single_frames_per_s']):>10} {fmt(r['batched_frames_per_s']):>10}")
    write_results(args.out, args, None, machine, {"envs": results, "pixel_observations": pixel_results})


if __name__ == "__main__":
    main()
