"""The agent benchmarks of the README on a CPU, each part selectable; prints a table and writes JSON.

    python -m scripts.bench.agents --parts ppo_vs_sb3 ppo_text cpl_text [--out FILE]

Parts (budgets are defaults; each flag is listed by --help):
    ppo_reach    our PPO on reach (dense reward, 32 copies) through scripts.train: final success (target >= 0.8)
    ppo_vs_sb3   env-steps/s of our PPO (closed-form step compiled (agent.compile=true) and eager, and autograd)
                 and SB3 PPO in one process: same vector env (32 copies), rollout length 64, tanh [64, 64] actor and
                 critic, 8 minibatches, 10 epochs, observation normalisation; each after an untimed warm-up update
    curl_pixels  CURL on reach from 48x48 pixels (--curl-image-size; crop 40, action repeat 2, dense reward; --curl-precision
                 bf16 for bfloat16 convolutions) for --curl-seconds:
                 success and return vs a random policy on the same env
    cpl_reach    CPL vs SFT (BC on the preferred segments) on reach, same dataset and gradient steps, per seed:
                 rollouts of random actions (--cpl-data ppo: a partly trained PPO at noise 0 / 0.3 / 1), gold
                 labels by the dense reward's gain over a segment
    ppo_text     our PPO on each text bandit (numeric views) vs the oracle's and a random policy's return
    cpl_text     CPL on gold preferences between random one-step segments of FlightPreference vs random
    text_policies  PPO (FlightPreference, InstructionFeedback) and CPL (FlightPreference) reading the text with the
                 bundled sentence encoder (agent.text_encoder=minilm) instead of the numeric views
    cpl_metaworld  CPL vs SFT on MetaWorld (--cpl-mw-tasks, --cpl-seeds) after the CPL paper's protocol, scaled to the
                 CPU: rollouts of a partly trained (~50 %-success) BC policy at noise 0.3 (--cpl-mw-data scripted:
                 of the noisy scripted policy), 2,500 pairs of 64-step segments labelled by the dense reward's gain,
                 BC pre-training for the first 40 % of the steps; beside the paper's Table 1 (CPL_PAPER_MW)
    goal_suites  goal-conditioned agents on the suites at the issue's wall-clock budgets, each run through
                 scripts.train with time_limit_s, for --goal-seeds: --goal-tasks picks from GOAL_TASKS (task ->
                 budget, agents beside each other); prints each run's success curve (evaluation every
                 --goal-eval-every env steps) and its final success
    offline_goal offline goal-conditioned RL on crlab Push (--offline-env): one dataset of the noisy scripted policy
                 (scripts.make_dataset), then offline CRL (+ BC term), GCBC, GCIQL and online CRL, all at --offline-updates
                 gradient steps (online: the env steps that give as many updates), for --offline-seeds; and CPL / SFT
                 on segment preferences cut from the same dataset (hindsight goals, scripts.make_preferences)
"""

from __future__ import annotations

import argparse
import csv
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
from agents.encoders import CONV_PRECISIONS, default_crop_size
from agents.preference_dataset import load_preference_dataset
from agents.sb3 import SB3PPOAgent, SB3PPOConfig
from envs.text_game import NumericView
from scripts.bench import machine_info, write_results
from scripts.engine import DatasetSource, Engine, EnvSource, train
from scripts.evaluate import evaluate
from scripts.run_setup import compose_config, make_envs

CPU = torch.device("cpu")
TEXT_ENVS = ("crlab/FlightPreference-v0", "crlab/Negotiation-v0", "crlab/InstructionFeedback-v0")
PARTS = ("ppo_reach", "ppo_vs_sb3", "curl_pixels", "cpl_reach", "ppo_text", "cpl_text", "text_policies", "goal_suites",
         "cpl_metaworld", "offline_goal")
# goal_suites: task -> (env config, wall-clock seconds, {run name: overrides}); the budgets are the issue's
PUSH_GOAL_STATE = ["agent.goal_observation_indices=[0,1]", "agent.command_from_goal=[0,1]"]
PUSH_MOTION = ["agent.goal_motion_share=0.5"]
# Fetch observations start with the gripper's xyz: Eysenbach et al.'s goal for Fetch push (gripper and block)
FETCH_GRIPPER_GOAL = ["agent.goal_observation_indices=[0,1,2]", "agent.command_from_goal=[0,1,2]"]
# runs measured before agent.actor_random_goals became 0.5 (the README's rows) keep the old default
CRL_NO_RANDOM_GOALS = ["agent=crl", "agent.actor_random_goals=0.0"]
# Push runs measured on the way to scripts/conf/tuned/crl_push.yaml (the README's rows): each names all its settings
PUSH_HISTORY: dict[str, list[str]] = {
    "crl": CRL_NO_RANDOM_GOALS, "crl_goal_state": [*CRL_NO_RANDOM_GOALS, *PUSH_GOAL_STATE],
    "crl_motion": [*CRL_NO_RANDOM_GOALS, *PUSH_MOTION], "crl_random_goals": ["agent=crl"],
    "crl_at_object": ["agent=crl", *PUSH_GOAL_STATE, "agent.command_source=achieved",
                      "agent.actor_random_goals=0.5"],
    "crl_at_object_motion": ["agent=crl", *PUSH_GOAL_STATE, "agent.command_source=achieved",
                             "agent.actor_random_goals=0.5", *PUSH_MOTION],
    # and half the actor's goals in the command's form (pusher slot = the block now)
    "crl_at_object_motion_command": ["agent=crl", *PUSH_GOAL_STATE, "agent.command_source=achieved",
                                     "agent.actor_random_goals=0.5", *PUSH_MOTION,
                                     "agent.actor_command_goals=0.5"],
    "crl_at_object_motion_utd1": ["agent=crl", *PUSH_GOAL_STATE, "agent.command_source=achieved",
                                  "agent.actor_random_goals=0.5", *PUSH_MOTION,
                                  "agent.updates_per_step=16"],  # one update per env step
    "crl_goal_state_motion": ["agent=crl", *PUSH_GOAL_STATE, *PUSH_MOTION,
                              "agent.actor_random_goals=0.5"],
}
GOAL_TASKS: dict[str, tuple[str, int, dict[str, list[str]]]] = {
    "fetch_reach": ("fetch_reach", 300, {"crl": CRL_NO_RANDOM_GOALS, "crl_random_goals": ["agent=crl"], "sb3_sac_her": ["agent=sb3_sac"],
                                         "sb3_tqc_her": ["agent=sb3_tqc"],
                                         "ppo_dense": ["agent=ppo", "env.kwargs.reward_type=dense", "env.num_envs=32"]}),
    # PPO on MetaWorld's own dense reward (the plain env), at the FetchReach-sized budget doubled
    "mw_drawer_open": ("mw_drawer_open", 600, {"ppo": ["agent=ppo"]}),
    "point_maze_medium": ("point_maze_medium", 600, {"crl_infonce": CRL_NO_RANDOM_GOALS,
                                                     "crl_td_infonce": [*CRL_NO_RANDOM_GOALS, "agent.contrastive_loss=td_infonce"],
                                                     "crl_random_goals": ["agent=crl", "agent.actor_random_goals=0.5"],
                                                     "crl_td_infonce_random_goals": ["agent=crl", "agent.contrastive_loss=td_infonce",
                                                                                     "agent.actor_random_goals=0.5"]}),
    "push": ("push", 1200, {"crl_tuned": ["agent=crl", "agent.compile=true"],  # the default: tuned/crl_push.yaml
                            "crl_tuned_command_half": ["agent=crl", "agent.compile=true", "agent.actor_command_goals=0.5"],
                            **{name: ["~tuned", *overrides] for name, overrides in PUSH_HISTORY.items()},
                            "sb3_sac_her": ["agent=sb3_sac"], "sb3_tqc_her": ["agent=sb3_tqc"]}),
    "fetch_push": ("fetch_push", 3600, {"crl_tuned": ["agent=crl", "agent.compile=true"],  # tuned/crl_fetch_push.yaml
                                        "crl": ["~tuned", *CRL_NO_RANDOM_GOALS],
                                        "crl_at_object_motion": ["~tuned", "agent=crl", *FETCH_GRIPPER_GOAL,
                                                                 "agent.command_source=achieved",
                                                                 "agent.actor_random_goals=0.5", *PUSH_MOTION],
                                        "sb3_sac_her": ["agent=sb3_sac"], "sb3_tqc_her": ["agent=sb3_tqc"]}),
}


def train_config(*overrides: str) -> Any:
    return compose_config("train", ["progress=false", "device=cpu", "video_episodes=0", *overrides])


def last_row(run_dir: Path) -> dict[str, float]:
    import csv

    with open(run_dir / "metrics.csv", newline="") as f:
        return {k: float(v) for k, v in list(csv.DictReader(f))[-1].items()}


def numeric_view(env: gymnasium.vector.VectorEnv) -> gymnasium.vector.VectorEnv:
    """A text game with only its numeric observation entries."""
    return NumericView(env)


class RandomAgent:
    device = CPU

    def __init__(self, space: gymnasium.Space) -> None:
        self.space = space

    def act(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        n = len(next(iter(obs.values())) if isinstance(obs, dict) else obs)
        return torch.as_tensor(np.stack([self.space.sample() for _ in range(n)]))


def run_online(agent: Any, env: gymnasium.vector.VectorEnv, env_steps: int, seed: int) -> float:
    """`env_steps` env steps of the run engine's online source (act -> step -> observe -> update), no hooks;
    returns env-steps/s."""
    engine = Engine([], total_steps=env_steps)
    EnvSource(agent, env, seed).drive(engine)
    return engine.steps / engine.elapsed()


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


# --- parts --------------------------------------------------------------------------------------------------
def ppo_reach(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    cfg = train_config("agent=ppo", "env=reach", "env.kwargs.reward_type=dense", "env.num_envs=32",
                       f"total_env_steps={args.ppo_steps}", f"eval_every={args.ppo_steps // 4}",
                       f"checkpoint_every={args.ppo_steps}", f"seed={args.seed}")
    start = time.perf_counter()
    row = last_row(train(cfg, out_dir / "ppo_reach"))
    return {"success": row["eval_success_rate"], "env_steps": int(row["env_steps"]),
            "wall_s": time.perf_counter() - start, "checkpoint": str(out_dir / "ppo_reach" / "checkpoints" / "latest.pt")}


def ppo_vs_sb3(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Each agent first runs one rollout + update untimed (for compile=true that includes compiling, reported as
    compile_warmup_s), then `--throughput-steps` timed env steps."""
    num_envs, steps, warmup = 32, args.throughput_steps, 64 * 32

    def env() -> gymnasium.vector.VectorEnv:
        return gymnasium.make_vec("crlab/Reach-v0", num_envs=num_envs, max_episode_steps=50, reward_type="dense")

    def ours(**overrides: Any) -> tuple[float, float]:
        ours_env = env()
        torch.manual_seed(args.seed)
        agent = make_agent("ppo", {"num_steps": 64, "num_minibatches": 8, "update_epochs": 10, "hidden": [64, 64],
                                   **overrides},
                           ours_env.single_observation_space, ours_env.single_action_space, num_envs, 50, CPU)
        warmup_s = warmup / run_online(agent, ours_env, warmup, args.seed)
        return run_online(agent, ours_env, steps, args.seed + 1), warmup_s

    compiled_sps, compile_warmup_s = ours(compile=True)
    closed_form_sps, _ = ours()
    autograd_sps, _ = ours(fused_gradients=False)
    sb3_env = env()
    sb3 = SB3PPOAgent(sb3_env.single_observation_space, sb3_env.single_action_space,
                      SB3PPOConfig(num_steps=64, num_minibatches=8, update_epochs=10, hidden=[64, 64]), num_envs, 50, CPU)
    venv = sb3.bind(sb3_env)
    venv.seed(args.seed)
    sb3.model.learn(total_timesteps=warmup)
    start, first = time.perf_counter(), sb3.env_steps
    sb3.model.learn(total_timesteps=steps, reset_num_timesteps=False)
    sb3_sps = (sb3.env_steps - first) / (time.perf_counter() - start)
    return {"ours_compiled_env_steps_per_s": compiled_sps, "ours_env_steps_per_s": closed_form_sps,
            "ours_autograd_env_steps_per_s": autograd_sps, "sb3_env_steps_per_s": sb3_sps,
            "speedup_compiled": compiled_sps / sb3_sps, "speedup": closed_form_sps / sb3_sps,
            "compile_warmup_s": compile_warmup_s, "env_steps": steps, "num_envs": num_envs}


def curl_pixels(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    # Small frames keep a CPU update affordable (48 px: 75 ms, 32 px: 30 ms, but 32 px learns far more slowly: the
    # goal is a 1-2 px dot); action repeat 2 over 25 agent steps is the same 50 control steps per episode as the
    # state env.
    size = args.curl_image_size
    env_overrides = ["env=reach_pixels", "env.num_envs=4", "env.max_episode_steps=25", "env.kwargs.reward_type=dense",
                     f"env.kwargs.image_size={size}", "env.kwargs.action_repeat=2", "env.kwargs.goal_image=false",
                     "eval_episodes=50", f"seed={args.seed}"]
    cfg = train_config("agent=curl", *env_overrides, "total_env_steps=10_000_000", f"time_limit_s={args.curl_seconds}",
                       f"eval_every={args.curl_eval_every}", "checkpoint_every=1_000_000", "agent.batch_size=64",
                       "agent.hidden=[256,256]", "agent.updates_per_step=0.5", "agent.buffer_size=100_000",
                       f"agent.conv_precision={args.curl_precision}")
    run_dir = train(cfg, out_dir / "curl_pixels")
    row = last_row(run_dir)
    eval_env = make_envs(cfg, 50)
    random_row = evaluate(RandomAgent(eval_env.single_action_space), eval_env, seed=args.seed + 10_000)
    eval_env.close()
    return {"success": row["eval_success_rate"], "return": row["eval_return"], "env_steps": int(row["env_steps"]),
            "wall_s": row["wall_time_s"], "random_success": random_row["eval_success_rate"],
            "random_return": random_row["eval_return"], "image_size": size, "crop": default_crop_size(size),
            "action_repeat": 2,
            "metrics_csv": str(run_dir / "metrics.csv")}


def cpl_dataset(args: argparse.Namespace, out_dir: Path, seed: int) -> tuple[Path, float | None]:
    """Record reach rollouts and label random segment pairs by their progress (gain of the dense reward); returns
    the dataset and, for --cpl-data ppo, the data policy's success. `random`: uniform random actions. `ppo`: a
    partly trained PPO at action noise 0 / 0.3 / 1."""
    from scripts.make_preferences import make_preferences

    record = ["record.env=reach", "record.env_kwargs={reward_type: dense}", f"record.episodes={args.cpl_episodes}"]
    behaviour_success = None
    if args.cpl_data == "ppo":
        cfg = train_config("agent=ppo", "env=reach", "env.kwargs.reward_type=dense", "env.num_envs=32",
                           f"total_env_steps={args.cpl_behaviour_steps}", f"eval_every={args.cpl_behaviour_steps}",
                           f"checkpoint_every={args.cpl_behaviour_steps}", f"seed={seed}")
        behaviour_success = last_row(train(cfg, out_dir / "cpl_behaviour"))["eval_success_rate"]
        record += [f"record.checkpoint={out_dir / 'cpl_behaviour' / 'checkpoints' / 'latest.pt'}"]
    else:
        record += ["record.noise=[0.0]"]
    prefs_cfg = compose_config("make_preferences", [
        f"rollouts={out_dir / 'cpl_rollouts'}", *record, f"pairs={args.cpl_pairs}",
        f"segment_length={args.cpl_segment_length}", f"seed={seed}", f"gold_score={args.cpl_gold_score}"])
    return make_preferences(prefs_cfg), behaviour_success


def cpl_reach(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"data": args.cpl_data, "pairs": args.cpl_pairs, "segment_length": args.cpl_segment_length}
    for seed in args.cpl_seeds:
        seed_dir = out_dir / f"cpl_reach_seed{seed}"
        dataset, behaviour_success = cpl_dataset(args, seed_dir, seed)
        row: dict[str, Any] = {} if behaviour_success is None else {"behaviour_success": behaviour_success}
        for name, sft in (("cpl", False), ("sft", True)):
            run_cfg = train_config("agent=cpl", "env=reach", f"agent.dataset={dataset}", f"agent.sft={str(sft).lower()}",
                                   f"agent.alpha={args.cpl_alpha}", f"total_env_steps={args.cpl_updates}",
                                   f"eval_every={args.cpl_updates}", f"checkpoint_every={args.cpl_updates}",
                                   f"seed={seed}", "eval_episodes=200")
            last = last_row(train(run_cfg, seed_dir / name))
            row[f"{name}_success"], row[f"{name}_return"] = last["eval_success_rate"], last["eval_return"]
        results[f"seed{seed}"] = row
    for key in ("cpl_success", "sft_success", "cpl_return", "sft_return"):
        results[f"mean_{key}"] = float(np.mean([results[f"seed{seed}"][key] for seed in args.cpl_seeds]))
    return results


# CPL paper (Hejna et al. 2024, ICLR), Table 1, row "State / 2.5k Dense": success rates in % (peak of the evaluation
# curve, 4 seeds; data: 2,500 episodes of a ~50 %-success SAC policy with noise 0.3, regret labels, 500k steps).
# The paper's "Button Press" is button-press (v2) in its code; crlab has button-press-topdown.
CPL_PAPER_MW = {"bin-picking": {"cpl": 80.0, "sft": 66.9}, "button-press-topdown": {"cpl": 24.5, "sft": 21.6},
                "door-open": {"cpl": 80.0, "sft": 63.3}, "drawer-open": {"cpl": 83.6, "sft": 62.6},
                "plate-slide": {"cpl": 61.1, "sft": 41.6}, "sweep-into": {"cpl": 70.4, "sft": 51.9}}


def weak_metaworld_policy(args: argparse.Namespace, env_name: str, seed: int, seed_dir: Path) -> tuple[Path, float]:
    """A partly trained policy, the stand-in for the CPL paper's ~50 %-success SAC checkpoint: BC (SFT) on a few
    noisy scripted episodes, evaluated every 50 gradient steps up to --cpl-mw-weak-updates; the checkpoint whose
    success is nearest --cpl-mw-weak-success (earliest on ties) is the behaviour policy. Returns it and its success."""
    from scripts.make_preferences import make_preferences

    steps, every = args.cpl_mw_episode_steps, 50
    demos = make_preferences(compose_config("make_preferences", [
        f"rollouts={seed_dir / 'demos'}", f"record.env={env_name}", "record.scripted=true", "record.noise=[0.5]",
        f"record.episodes={args.cpl_mw_weak_episodes}", f"record.env_kwargs={{goal_mode: {args.cpl_mw_goal_mode}}}",
        "record.num_envs=8", f"record.max_episode_steps={steps}", "pairs=500", "segment_length=64",
        f"seed={seed + 1000}"]))
    updates = args.cpl_mw_weak_updates
    cfg = train_config("agent=cpl", f"env={env_name}", f"env.max_episode_steps={steps}",
                       f"env.kwargs.goal_mode={args.cpl_mw_goal_mode}", f"agent.dataset={demos}", "agent.sft=true",
                       f"total_env_steps={updates}", f"eval_every={every}", f"checkpoint_every={every}",
                       f"keep_checkpoints={updates // every + 1}", f"seed={seed}", "eval_episodes=25")
    run_dir = train(cfg, seed_dir / "behaviour")
    with open(run_dir / "metrics.csv") as f:
        curve = [(int(float(r["env_steps"])), float(r["eval_success_rate"])) for r in csv.DictReader(f)]
    step, success = min(((s, v) for s, v in curve if s > 0), key=lambda sv: (abs(sv[1] - args.cpl_mw_weak_success), sv[0]))
    print(f"weak {env_name} seed {seed}: success curve {curve}; behaviour policy = step {step} ({success:.2f})", flush=True)
    return run_dir / "checkpoints" / f"step_{step}.pt", success


def cpl_metaworld(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """CPL vs SFT on MetaWorld after the CPL paper's protocol, scaled to this CPU: rollouts of a noisy scripted
    policy (MetaWorld's own, Gaussian noise per episode), pairs of 64-step segments labelled by the dense reward
    (its gain over the segment by default: --cpl-mw-gold-score; --cpl-mw-pairs, the paper's 2.5k setting by default),
    CPL and SFT on the same data, success rates. --cpl-mw-data weak records a partly trained BC policy at noise 0.3
    instead (weak_metaworld_policy), closer to the paper's suboptimal SAC data."""
    from scripts.make_preferences import make_preferences

    results: dict[str, Any] = {"episodes": args.cpl_mw_episodes, "pairs": args.cpl_mw_pairs,
                               "bc_fraction": args.cpl_mw_bc_fraction, "gold_score": args.cpl_mw_gold_score,
                               "episode_steps": args.cpl_mw_episode_steps, "updates": args.cpl_mw_updates,
                               "noise": args.cpl_mw_noise, "data": args.cpl_mw_data, "goal_mode": args.cpl_mw_goal_mode,
                               "paper_table_1_percent": CPL_PAPER_MW}
    if args.cpl_mw_data == "weak":
        results.update(weak_episodes=args.cpl_mw_weak_episodes, weak_updates=args.cpl_mw_weak_updates,
                       weak_noise=args.cpl_mw_weak_noise)
    steps = args.cpl_mw_episode_steps
    for task in args.cpl_mw_tasks:
        env_name = f"mw_{task.replace('-', '_')}"
        for seed in args.cpl_seeds:
            seed_dir = out_dir / f"cpl_mw_{task}_seed{seed}"
            start = time.perf_counter()
            row: dict[str, Any] = {}
            policy = ["record.scripted=true", f"record.noise=[{','.join(str(n) for n in args.cpl_mw_noise)}]"]
            if args.cpl_mw_data == "weak":
                behaviour, row["behaviour_success"] = weak_metaworld_policy(args, env_name, seed, seed_dir)
                policy = [f"record.checkpoint={behaviour}", f"record.noise=[{args.cpl_mw_weak_noise}]"]
            prefs_cfg = compose_config("make_preferences", [
                f"rollouts={seed_dir / 'rollouts'}", f"record.env={env_name}", *policy,
                f"record.episodes={args.cpl_mw_episodes}", f"record.env_kwargs={{goal_mode: {args.cpl_mw_goal_mode}}}",
                "record.num_envs=8", f"record.max_episode_steps={steps}", f"pairs={args.cpl_mw_pairs}", "segment_length=64",
                f"gold_score={args.cpl_mw_gold_score}", f"seed={seed}", "device=cpu"])
            dataset = make_preferences(prefs_cfg)
            row["data_s"] = time.perf_counter() - start
            for name, sft in (("cpl", False), ("sft", True)):
                run_cfg = train_config("agent=cpl", f"env={env_name}", f"env.max_episode_steps={steps}",
                                       f"env.kwargs.goal_mode={args.cpl_mw_goal_mode}", f"agent.dataset={dataset}",
                                       f"agent.sft={str(sft).lower()}",
                                       f"agent.bc_steps={int(args.cpl_mw_bc_fraction * args.cpl_mw_updates)}",
                                       f"total_env_steps={args.cpl_mw_updates}", f"eval_every={args.cpl_mw_updates // 4}",
                                       f"checkpoint_every={args.cpl_mw_updates}", f"seed={seed}", "eval_episodes=25")
                with open(train(run_cfg, seed_dir / name) / "metrics.csv") as f:
                    curve = [float(r["eval_success_rate"]) for r in csv.DictReader(f)]
                # final, and the peak of the curve after step 0 (the paper's Table 1 reports the peak of its curve)
                row[f"{name}_success"], row[f"{name}_peak_success"] = curve[-1], max(curve[1:])
            results[f"{task}.seed{seed}"] = row
            print(f"cpl_metaworld {task} seed {seed}: {row}", flush=True)
        for key in ("cpl_success", "sft_success", "cpl_peak_success", "sft_peak_success") + (("behaviour_success",) if args.cpl_mw_data == "weak" else ()):
            results[f"{task}.mean_{key}"] = float(np.mean([results[f"{task}.seed{s}"][key] for s in args.cpl_seeds]))
    return results


def ppo_text(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for env_id in TEXT_ENVS:
        env = numeric_view(gymnasium.make_vec(env_id, num_envs=64))
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
    env = numeric_view(gymnasium.make_vec("crlab/FlightPreference-v0", num_envs=64))
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


def goal_suites(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    import csv

    results: dict[str, Any] = {}
    for task in args.goal_tasks:
        env_name, seconds, runs = GOAL_TASKS[task]
        for name, overrides in runs.items():
            if args.goal_runs and name not in args.goal_runs:
                continue
            for seed in args.goal_seeds:
                run_dir = out_dir / f"{task}_{name}_seed{seed}"
                cfg = train_config(*overrides, f"env={env_name}", f"seed={seed}", f"time_limit_s={seconds}",
                                   "total_env_steps=100_000_000", f"eval_every={args.goal_eval_every}",
                                   f"checkpoint_every={10 * args.goal_eval_every}", f"torch_threads={args.threads}")
                start = time.perf_counter()
                train(cfg, run_dir)
                with open(run_dir / "metrics.csv", newline="") as f:
                    table = list(csv.DictReader(f))
                curve = [(int(r["env_steps"]), round(float(r["eval_success_rate"]), 3)) for r in table]
                results[f"{task}.{name}.seed{seed}"] = {
                    "success": float(table[-1]["eval_success_rate"]), "env_steps": int(table[-1]["env_steps"]),
                    "wall_s": time.perf_counter() - start, "budget_s": seconds, "curve": str(curve),
                    "peak_rss_mb": float(table[-1].get("peak_rss_mb") or "nan")}
                print(f"{task} {name} seed {seed}: {curve}, peak RSS {results[f'{task}.{name}.seed{seed}']['peak_rss_mb']:,.0f} MB",
                      flush=True)
    return results


def offline_goal(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    import csv

    from agents.goal_dataset import save_goal_dataset
    from scripts.make_dataset import collect

    env_cfg = compose_config("make_dataset", [f"env={args.offline_env}"]).env
    start = time.perf_counter()
    if args.offline_data:  # a dataset made before (scripts.make_dataset), e.g. OGBench's protocol on cube-single
        data = Path(args.offline_data)
        results: dict[str, Any] = {"dataset": {"path": str(data)}}
    else:
        steps = collect(env_cfg, "noisy", args.offline_noise, args.offline_episodes, 16, seed=0)
        data = save_goal_dataset(out_dir / "offline_data.npz", steps, env_id=env_cfg.id, policy="noisy",
                                 noise=args.offline_noise, seed=0, episodes=args.offline_episodes)
        results = {"dataset": {"episodes": args.offline_episodes, "steps": len(steps["actions"]),
                               "noise": args.offline_noise, "collect_s": time.perf_counter() - start}}
    g, every = args.offline_updates, args.offline_updates // args.offline_evals
    warmup = 2_000 + int(env_cfg.num_envs) * int(env_cfg.max_episode_steps)  # crl's warm-up, then one stored episode
    online_steps = warmup + g * int(env_cfg.num_envs)  # one update per vector step of num_envs copies
    crl = ["~tuned", *CRL_NO_RANDOM_GOALS]  # as measured for the README (before tuned/crl_push.yaml)
    runs = {"crl_offline_bc": [*crl, f"agent.dataset={data}", f"agent.bc_coef={args.offline_bc}",
                               f"total_env_steps={g}", f"eval_every={every}"],
            "crl_offline": [*crl, f"agent.dataset={data}", f"total_env_steps={g}", f"eval_every={every}"],
            "gcbc": ["agent=gcbc", f"agent.dataset={data}", f"total_env_steps={g}", f"eval_every={every}"],
            "gciql": ["agent=gciql", f"agent.dataset={data}", f"total_env_steps={g}", f"eval_every={every}"],
            "crl_online": [*crl, f"total_env_steps={online_steps}", f"eval_every={online_steps // 4}"]}
    if not args.offline_runs or {"cpl_prefs", "sft_prefs"} & set(args.offline_runs):
        from scripts.make_preferences import make_preferences

        # the same dataset as segment preferences: hindsight goals, labels by the gain of -distance to them
        prefs = make_preferences(compose_config("make_preferences", [
            f"rollouts={data}", f"pairs={args.offline_pairs}", "segment_length=25", "gold_score=progress", "seed=0",
            f"out={out_dir / 'offline_prefs.npz'}"]))
        for name, sft in (("cpl_prefs", "false"), ("sft_prefs", "true")):
            runs[name] = ["agent=cpl", f"agent.dataset={prefs}", f"agent.sft={sft}", f"total_env_steps={g}",
                          f"eval_every={every}"]
    for seed in args.offline_seeds:
        for name, overrides in runs.items():
            if args.offline_runs and name not in args.offline_runs:
                continue
            run_dir = out_dir / f"offline_{name}_seed{seed}"
            begin = time.perf_counter()
            train(train_config(*overrides, f"env={args.offline_env}", f"seed={seed}", f"checkpoint_every={g * 100}",
                               f"torch_threads={args.threads}", f"eval_at_start={args.offline_eval_at_start}"), run_dir)
            with open(run_dir / "metrics.csv", newline="") as f:
                table = list(csv.DictReader(f))
            curve = [(int(r["env_steps"]), round(float(r["eval_success_rate"]), 3)) for r in table]
            results[f"{name}.seed{seed}"] = {"success": float(table[-1]["eval_success_rate"]), "gradient_steps": g,
                                              "wall_s": time.perf_counter() - begin, "curve": str(curve)}
            print(f"offline_goal {name} seed {seed}: {curve}", flush=True)
    return results


RUNNERS = {"cpl_metaworld": cpl_metaworld, "offline_goal": offline_goal,
           "goal_suites": goal_suites, "ppo_reach": ppo_reach, "ppo_vs_sb3": ppo_vs_sb3, "curl_pixels": curl_pixels, "cpl_reach": cpl_reach,
           "ppo_text": ppo_text, "text_policies": text_policies, "cpl_text": cpl_text}


def flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in flatten(f"{prefix}.{k}" if prefix else k, v)]
    return [(prefix, value)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--ppo-steps", type=int, default=500_000, help="ppo_reach: env steps")
    parser.add_argument("--throughput-steps", type=int, default=81_920, help="ppo_vs_sb3: timed env steps each")
    parser.add_argument("--curl-seconds", type=float, default=3300.0, help="curl_pixels: wall-clock budget")
    parser.add_argument("--curl-eval-every", type=int, default=10_000)
    parser.add_argument("--curl-image-size", type=int, default=48, help="curl_pixels: frame size (crop: 84 %%)")
    parser.add_argument("--curl-precision", default="fp32", choices=list(CONV_PRECISIONS),
                        help="curl_pixels: agent.conv_precision (bf16: convolutions under bfloat16 autocast)")
    parser.add_argument("--cpl-data", default="random", choices=["random", "ppo"],
                        help="cpl_reach: rollouts of uniform random actions, or of a partly trained PPO at noise 0/0.3/1")
    parser.add_argument("--cpl-behaviour-steps", type=int, default=60_000, help="cpl_reach --cpl-data ppo: PPO steps")
    parser.add_argument("--cpl-episodes", type=int, default=1200)
    parser.add_argument("--cpl-pairs", type=int, default=10_000)
    parser.add_argument("--cpl-segment-length", type=int, default=10)
    parser.add_argument("--offline-env", default="push", help="offline_goal: env config")
    parser.add_argument("--offline-episodes", type=int, default=1000, help="offline_goal: dataset episodes")
    parser.add_argument("--offline-noise", type=float, default=0.3, help="offline_goal: action noise of the data")
    parser.add_argument("--offline-updates", type=int, default=10_000, help="offline_goal: gradient steps per run")
    parser.add_argument("--offline-evals", type=int, default=4, help="offline_goal: evaluations after the start")
    parser.add_argument("--offline-eval-at-start", choices=["true", "false"], default="true",
                        help="offline_goal: evaluate the untrained policy too (false saves one evaluation on slow envs)")
    parser.add_argument("--offline-bc", type=float, default=0.1, help="offline_goal: agent.bc_coef of crl_offline_bc")
    parser.add_argument("--offline-seeds", type=int, nargs="+", default=[0], help="offline_goal: seeds")
    parser.add_argument("--offline-data", default=None, help="offline_goal: an existing dataset instead of collecting one")
    parser.add_argument("--offline-runs", nargs="+", default=None,
                        choices=["crl_offline_bc", "crl_offline", "gcbc", "gciql", "crl_online", "cpl_prefs", "sft_prefs"],
                        help="offline_goal: runs (cpl_prefs / sft_prefs: CPL / SFT on segment preferences of the dataset)")
    parser.add_argument("--offline-pairs", type=int, default=5_000,
                        help="offline_goal cpl_prefs / sft_prefs: labelled pairs of 25-step segments")
    parser.add_argument("--cpl-seeds", type=int, nargs="+", default=[0, 1, 2], help="cpl_reach: one dataset per seed")
    parser.add_argument("--cpl-gold-score", default="progress", choices=["progress", "return"],
                        help="cpl_reach: label segments by their reward gain (regret-like) or their return")
    parser.add_argument("--cpl-alpha", type=float, default=0.02, help="cpl_reach: CPL temperature (0.1 in the paper)")
    parser.add_argument("--cpl-updates", type=int, default=3_000, help="cpl_reach: gradient steps of CPL and of SFT")
    parser.add_argument("--cpl-mw-tasks", nargs="+", default=["drawer-open", "button-press-topdown"],
                        choices=sorted(CPL_PAPER_MW), help="cpl_metaworld: tasks (with --cpl-seeds)")
    parser.add_argument("--cpl-mw-episodes", type=int, default=160, help="cpl_metaworld: recorded episodes per seed")
    parser.add_argument("--cpl-mw-episode-steps", type=int, default=250, help="cpl_metaworld: episode length")
    parser.add_argument("--cpl-mw-pairs", type=int, default=2500, help="cpl_metaworld: labelled segment pairs")
    parser.add_argument("--cpl-mw-noise", type=float, nargs="+", default=[0.5, 1.0],
                        help="cpl_metaworld: per-episode Gaussian action noise of the scripted policy, cycled")
    parser.add_argument("--cpl-mw-data", default="weak", choices=["scripted", "weak"],
                        help="cpl_metaworld: rollouts of the noisy scripted policy, or of a partly trained (weak) BC "
                             "policy at --cpl-mw-weak-noise (the paper: a ~50 %%-success SAC policy at noise 0.3)")
    parser.add_argument("--cpl-mw-weak-episodes", type=int, default=4, help="cpl_metaworld weak: BC demonstrations")
    parser.add_argument("--cpl-mw-weak-updates", type=int, default=1_000,
                        help="cpl_metaworld weak: BC gradient steps searched for the behaviour checkpoint")
    parser.add_argument("--cpl-mw-weak-success", type=float, default=0.5,
                        help="cpl_metaworld weak: the behaviour checkpoint's target success (the paper's SAC: ~50 %%)")
    parser.add_argument("--cpl-mw-goal-mode", default="random", choices=["fixed", "mt1", "random"],
                        help="cpl_metaworld: MetaWorld goal_mode of data and evaluation (fixed: every episode alike)")
    parser.add_argument("--cpl-mw-weak-noise", type=float, default=0.3, help="cpl_metaworld weak: action noise")
    parser.add_argument("--cpl-mw-updates", type=int, default=2_000, help="cpl_metaworld: gradient steps of CPL / SFT")
    parser.add_argument("--cpl-mw-gold-score", default="progress", choices=["progress", "return"],
                        help="cpl_metaworld: label by the dense reward's gain over a segment (regret-like, as CPL assumes) "
                             "or its return (which prefers segments from later, better states whatever the actions)")
    parser.add_argument("--cpl-mw-bc-fraction", type=float, default=0.4,
                        help="cpl_metaworld: share of the steps that are BC pre-training first (the paper: 200k of 500k)")
    parser.add_argument("--text-steps", type=int, default=150_000, help="ppo_text: env steps per game")
    parser.add_argument("--cpl-text-pairs", type=int, default=3000)
    parser.add_argument("--text-policy-steps", type=int, default=20_000,
                        help="text_policies: PPO env steps per game (the sentence encoder runs every step)")
    parser.add_argument("--cpl-text-updates", type=int, default=3000)
    parser.add_argument("--goal-tasks", nargs="+", default=["fetch_reach", "point_maze_medium", "push"],
                        choices=list(GOAL_TASKS), help="goal_suites: tasks")
    parser.add_argument("--goal-runs", nargs="+", default=None, help="goal_suites: only these run names")
    parser.add_argument("--goal-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--goal-eval-every", type=int, default=25_000, help="goal_suites: env steps")
    parser.add_argument("--out-dir", type=Path, default=None, help="run directories (default: a temp dir)")
    parser.add_argument("--out", type=str, default=None, help="write the numbers to this JSON file")
    args = parser.parse_args()
    if not 1 <= args.offline_evals <= args.offline_updates:
        parser.error(f"--offline-evals {args.offline_evals} must be in 1..--offline-updates ({args.offline_updates})")

    torch.set_num_threads(args.threads)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_agents_"))
    results: dict[str, Any] = {}
    for part in args.parts:
        print(f"running {part} ...", flush=True)
        start = time.perf_counter()
        results[part] = RUNNERS[part](args, out_dir)
        results[part]["part_wall_s"] = time.perf_counter() - start
    machine = machine_info()
    print(f"\nmachine: {machine['processor']}, {machine['cpu_count']} CPUs, {machine['torch_threads']} torch thread(s)")
    for part, numbers in results.items():
        for key, value in flatten("", numbers):
            cell = f"{value:,.3f}" if isinstance(value, float) else str(value)
            print(f"{part:<12} {key:<40} {cell:>14}")
    write_results(args.out, args, out_dir, machine, results)


if __name__ == "__main__":
    main()
