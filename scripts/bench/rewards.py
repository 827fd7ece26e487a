"""Reward-module benchmarks on crlab/Reach-v0 (the numbers quoted for issue 4):

    python -m scripts.bench.rewards preference [--pairs 4000] [--seed 0] [--out FILE]
    python -m scripts.bench.rewards clip [--frames 8192] [--steps 1000] [--liv-weight 0] [--out FILE]
    python -m scripts.bench.rewards rl [--agent ppo] [--steps 300000] [--out FILE]

preference  Bradley–Terry reward model trained on pairs of 25-step segments labelled by a perfectly rational
            synthetic teacher from Reach's gold dense reward (−distance); held-out preference accuracy on pairs from
            other episodes (target >= 0.90).
clip        `scripts.finetune_clip` on Reach (tiny architecture from scratch, scripted-reacher episodes), then the CLIP
            reward's Spearman correlation with the negative goal distance on held-out recorded rollouts (target >= 0.7).
rl          the same agent trained on Reach's dense reward with `reward=preference` (learned online) and with the
            ground truth; final evaluation success rates (target: within 10 points).
pebble      PEBBLE (Lee et al. 2021): SB3 SAC on Reach's dense reward, the ground truth vs an online preference model
            whose labels come from a scripted teacher on the gold return (the replay buffer relabelled after every
            feedback session) vs RL-VLM-F (Wang et al. 2024: labels from a CLIP frame comparison; here a tiny CLIP
            fine-tuned on Reach by scripts.finetune_clip, no download); same seed and env steps; success / gold
            return / proxy return per evaluation, and pebble.png with the curves.
    python -m scripts.bench.rewards pebble [--steps 30000] [--num-envs 4] [--query-every 2000] [--out FILE]
Each prints a JSON summary and, with --out, writes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from scipy import stats

import envs  # noqa: F401  (registers crlab/ envs)
from envs.batched import true_next_obs
from envs.recorder import RolloutRecorder
from rewards.clip import CLIPReward
from rewards.preference import PreferenceRewardModel, SyntheticLabeler, preference_accuracy
from scripts.bench import add_record_args, write_results
from scripts.engine import train
from scripts.finetune_clip import finetune, scripted_reach_actions
from scripts.report import last_row, read_rows
from scripts.run_setup import compose_config

ENV_ID = "crlab/Reach-v0"
EPISODE_STEPS = 50
# the CLIP reward's goal prompts: what Reach's describe() says on success, in the captions' own words (a single
# prompt ranks frames less steadily: one caption's embedding carries the quirks of its digits)
GOAL_CAPTIONS = [f"The fingertip is on the green goal (0.0{i} m away)." for i in range(5)]


def reach_episodes(num_episodes: int, seed: int, noise: float = 0.5) -> dict[str, Any]:
    """Whole Reach episodes (E, 50, ...): half the copies act at random, half with the noisy scripted reacher."""
    env = gymnasium.make_vec(ENV_ID, num_envs=num_episodes, max_episode_steps=EPISODE_STEPS, reward_type="dense")
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    scripted = np.arange(num_episodes) % 2 == 1
    steps: list[dict[str, Any]] = []
    for _ in range(EPISODE_STEPS):
        action = np.where(scripted[:, None], scripted_reach_actions(obs, rng, noise), env.action_space.sample())
        next_obs, reward, _, _, info = env.step(action)
        steps.append({"obs": obs, "action": action, "next_obs": true_next_obs(next_obs, info), "reward": reward})
        obs = next_obs
    env.close()

    def stack(key: str) -> Any:
        if isinstance(steps[0][key], dict):
            return {k: torch.as_tensor(np.stack([s[key][k] for s in steps], 1), dtype=torch.float32)
                    for k in steps[0][key]}
        return torch.as_tensor(np.stack([s[key] for s in steps], 1), dtype=torch.float32)

    return {key: stack(key) for key in ("obs", "action", "next_obs", "reward")}


def segment_pairs(episodes: dict[str, Any], num_pairs: int, length: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Two batches of random `length`-step segments (num_pairs, length, ...) from the episodes."""
    num_episodes = len(episodes["reward"])

    def sample() -> dict:
        e = torch.as_tensor(rng.integers(num_episodes, size=num_pairs))
        t = torch.as_tensor(rng.integers(EPISODE_STEPS - length + 1, size=num_pairs))[:, None] + torch.arange(length)
        take = lambda x: x[e[:, None], t]  # noqa: E731
        return {k: ({kk: take(vv) for kk, vv in v.items()} if isinstance(v, dict) else take(v)) for k, v in episodes.items()}

    return sample(), sample()


def reach_dense_reward(obs: Any, action: Any, next_obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Reach's gold dense reward, −‖achieved_goal − desired_goal‖ of s', (B,)."""
    return -torch.linalg.norm(next_obs["achieved_goal"] - next_obs["desired_goal"], dim=-1)


def bench_preference(args: argparse.Namespace) -> dict[str, Any]:
    """Train on synthetic labels from the gold dense reward; held-out accuracy on pairs from other episodes."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    labeler = SyntheticLabeler(reach_dense_reward, seed=args.seed)
    train_episodes, test_episodes = reach_episodes(args.episodes, args.seed), reach_episodes(args.episodes, args.seed + 1000)
    train_a, train_b = segment_pairs(train_episodes, args.pairs, args.segment_length, rng)
    test_a, test_b = segment_pairs(test_episodes, 2000, args.segment_length, rng)
    env = gymnasium.make(ENV_ID)
    model = PreferenceRewardModel.from_spaces(env.observation_space, env.action_space, input=args.input,
                                              obs_keys=args.obs_keys, ensemble_size=3, hidden_dim=128, num_layers=2,
                                              lr=1e-3)
    start = time.perf_counter()
    fit = model.fit(train_a, train_b, labeler(train_a, train_b), epochs=args.epochs, batch_size=128)
    with torch.no_grad():
        held_out = preference_accuracy(model.segment_returns(test_a).mean(0), model.segment_returns(test_b).mean(0),
                                       labeler(test_a, test_b))
    if args.save is not None:  # e.g. for `reward=preference reward.path=FILE reward.online.query_every=0`
        model.save(args.save)
    return {"benchmark": "preference", "input": args.input, "train_pairs": args.pairs, "segment_length": args.segment_length,
            "train_accuracy": fit["accuracy"], "held_out_accuracy": held_out, "target": 0.9,
            "fit_time_s": time.perf_counter() - start}


def record_held_out(folder: Path, episodes: int, seed: int, frame_size: int) -> list[Path]:
    """Rollout files of the noisy scripted reacher on seeds the CLIP training never saw."""
    rng = np.random.default_rng(seed)
    env = RolloutRecorder(gymnasium.make(ENV_ID, render_mode="rgb_array", width=frame_size, height=frame_size,
                                         reward_type="dense"))
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            batch = {k: v[None] for k, v in obs.items()}
            obs, _, terminated, truncated, _ = env.step(scripted_reach_actions(batch, rng, 0.5)[0])
            done = terminated or truncated
    return list(env.save(folder / "held_out"))


def bench_clip(args: argparse.Namespace) -> dict[str, Any]:
    """finetune_clip on Reach, then Spearman(CLIP reward, −goal distance) on held-out recorded rollouts."""
    folder = Path(args.work_dir or tempfile.mkdtemp())
    cfg = compose_config("finetune_clip", [f"frames={args.frames}", f"steps={args.steps}", f"liv_weight={args.liv_weight}",
                                           f"seed={args.seed}", f"out={folder / 'clip_reach'}", f"device={args.device}",
                                           f"progress={str(args.progress).lower()}"])
    start = time.perf_counter()
    checkpoint = finetune(cfg)
    train_time = time.perf_counter() - start
    _, rollout = record_held_out(folder, args.held_out_episodes, args.seed + 10_000, cfg.frame_size)
    data = np.load(rollout)
    distance = np.linalg.norm(data["next_obs.achieved_goal"] - data["next_obs.desired_goal"], axis=-1)
    reward = CLIPReward(GOAL_CAPTIONS, f"local-dir:{checkpoint}", None)
    values = reward({"frames": data["frames"]}).cpu().numpy()
    spearman = float(stats.spearmanr(values, -distance)[0])
    return {"benchmark": "clip", "frames": args.frames, "steps": args.steps, "liv_weight": args.liv_weight,
            "goal_prompts": GOAL_CAPTIONS, "held_out_transitions": int(len(values)), "spearman": spearman,
            "target": 0.7, "train_time_s": train_time, "checkpoint": kept_path(args, checkpoint)}


def kept_path(args: argparse.Namespace, path: Path) -> str | None:
    """`path` as the record keeps it: where --work-dir put it; None in a temporary folder, which means nothing later."""
    return str(path) if args.work_dir else None


def bench_rl(args: argparse.Namespace) -> dict[str, Any]:
    """The same agent and seed on the ground-truth dense reward and on an online-learned preference reward."""
    folder = Path(args.work_dir or tempfile.mkdtemp())
    common = [f"agent={args.agent}", "env.kwargs.reward_type=dense", f"env.num_envs={args.num_envs}",
              f"total_env_steps={args.steps}", f"eval_every={args.steps // 5}", "video_episodes=0",
              f"seed={args.seed}", f"device={args.device}", f"progress={str(args.progress).lower()}"]
    runs = {"ground_truth": common,
            "preference": [*common, "reward=preference", "reward.input=next_obs", "reward.online.first_query=2000",
                           f"reward.online.query_every={args.query_every}", f"reward.online.queries={args.queries}",
                           f"reward.online.max_labels={args.max_labels}"]}
    if args.obs_keys:
        runs["preference"].append(f"reward.obs_keys=[{','.join(args.obs_keys)}]")
    out: dict[str, Any] = {"benchmark": "rl", "agent": args.agent, "env_steps": args.steps}
    for name, overrides in runs.items():
        start = time.perf_counter()
        run_dir = train(compose_config("train", overrides), folder / name)
        out[f"{name}_success"] = last_row(run_dir / "metrics.csv")["eval_success_rate"]
        out[f"{name}_time_s"] = time.perf_counter() - start
        out[f"{name}_run"] = kept_path(args, run_dir)
    out["gap_points"] = 100 * (out["ground_truth_success"] - out["preference_success"])
    out["target_gap_points"] = 10
    return out


def bench_pebble(args: argparse.Namespace) -> dict[str, Any]:
    """SB3 SAC on the gold dense reward, with PEBBLE's online preference reward, and with RL-VLM-F's frame labels."""
    folder = Path(args.work_dir or tempfile.mkdtemp())
    frame = ["+env.kwargs.width=64", "+env.kwargs.height=64"]
    common = ["agent=sb3_sac", "env.kwargs.reward_type=dense", f"env.num_envs={args.num_envs}", "agent.her=false",
              f"total_env_steps={args.steps}", f"eval_every={args.steps // 10}", "video_episodes=0", "eval_episodes=50",
              f"seed={args.seed}", f"device={args.device}", f"progress={str(args.progress).lower()}", "log_every_s=5"]
    online = ["reward.online.first_query=1000", f"reward.online.query_every={args.query_every}",
              f"reward.online.queries={args.queries}", f"reward.online.max_labels={args.max_labels}",
              "reward.online.window=20000"]
    runs = {"ground_truth": common,
            "pebble": [*common, "reward=preference", "reward.input=next_obs", *online,
                       "reward.obs_keys=[achieved_goal,desired_goal]"]}
    out: dict[str, Any] = {"benchmark": "pebble", "agent": "sb3_sac", "env": ENV_ID, "env_steps": args.steps,
                           "num_envs": args.num_envs, "query_every": args.query_every, "queries": args.queries,
                           "max_labels": args.max_labels}
    runs = {name: overrides for name, overrides in runs.items() if name in args.pebble_runs}
    if "rl_vlm_f" in args.pebble_runs:
        start = time.perf_counter()
        clip_cfg = compose_config("finetune_clip", [f"frames={args.frames}", "steps=500", f"seed={args.seed}",
                                                    f"out={folder / 'clip_reach'}", f"device={args.device}",
                                                    "progress=false"])
        checkpoint = finetune(clip_cfg)
        out["clip_finetune_s"] = time.perf_counter() - start
        runs["rl_vlm_f"] = [*common, *frame, "reward=vlm_preference", *online, "reward.online.segment_length=1",
                            "reward.obs_keys=[achieved_goal,desired_goal]", f"reward.labeler.checkpoint={checkpoint}",
                            f"reward.labeler.task_text='{GOAL_CAPTIONS[0]}'"]
    curves: dict[str, list[dict[str, float]]] = {}
    for name, overrides in runs.items():
        start = time.perf_counter()
        run_dir = train(compose_config("train", overrides), folder / name)
        rows = curves[name] = read_rows(run_dir / "metrics.csv")
        out[name] = {"success": rows[-1]["eval_success_rate"], "gold_return": rows[-1]["eval_return"],
                     "time_s": time.perf_counter() - start, "run": kept_path(args, run_dir),
                     "curve": [(int(r["env_steps"]), round(r["eval_success_rate"], 2)) for r in rows]}
        if "eval_proxy_return" in rows[-1]:
            gold = np.array([r["eval_return"] for r in rows])
            proxy = np.array([r["eval_proxy_return"] for r in rows])
            out[name]["proxy_return"] = float(proxy[-1])
            varies = len(rows) > 2 and proxy.std() > 0 and gold.std() > 0
            out[name]["proxy_gold_pearson"] = float(np.corrcoef(proxy, gold)[0, 1]) if varies else None
        print(f"{name}: {out[name]['curve']}", flush=True)
    plot_pebble(curves, (Path(args.out).with_suffix(".png") if args.out else folder / "pebble.png"))
    return out


def plot_pebble(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Success and gold return per evaluation for each run, and each learned reward's proxy return beside gold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, rows in curves.items():
        steps = [r["env_steps"] for r in rows]
        axes[0].plot(steps, [r["eval_success_rate"] for r in rows], label=name)
        axes[1].plot(steps, [r["eval_return"] for r in rows], label=name)
        if "eval_proxy_return" in rows[-1]:
            axes[2].plot([r["eval_return"] for r in rows], [r["eval_proxy_return"] for r in rows], "o-", label=name)
    for ax, title in zip(axes, ("evaluation success", "gold (dense) return", "proxy vs gold return")):
        ax.set_title(title)
        ax.legend(fontsize=7)
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("env steps")
    axes[2].set_xlabel("gold return")
    axes[2].set_ylabel("learned reward's return")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=("preference", "clip", "rl", "pebble"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    add_record_args(parser)
    parser.add_argument("--work-dir", default=None, help="where checkpoints, rollouts and runs go (default: a temp dir)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (small models: 1)")
    parser.add_argument("--pairs", type=int, default=4000, help="preference: labelled training pairs")
    parser.add_argument("--episodes", type=int, default=400, help="preference: episodes to draw segments from")
    parser.add_argument("--segment-length", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--obs-keys", nargs="+", default=None,
                        help="preference, rl: observation keys the reward model sees (default all)")
    parser.add_argument("--save", type=Path, default=None, help="preference: write the trained model here")
    parser.add_argument("--input", default="next_obs", help="preference: r̂(s') (next_obs) or r̂(s, a) (obs_action)")
    parser.add_argument("--frames", type=int, default=8192, help="clip: training frames")
    parser.add_argument("--steps", type=int, default=None, help="clip: gradient steps (1000); rl: env steps (300000)")
    parser.add_argument("--liv-weight", type=float, default=0.0)
    parser.add_argument("--held-out-episodes", type=int, default=20)
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--query-every", type=int, default=5000, help="rl: env steps between feedback sessions")
    parser.add_argument("--queries", type=int, default=400, help="rl: labels per feedback session")
    parser.add_argument("--max-labels", type=int, default=6000, help="rl, pebble: label budget")
    parser.add_argument("--pebble-runs", nargs="+", default=["ground_truth", "pebble", "rl_vlm_f"],
                        choices=["ground_truth", "pebble", "rl_vlm_f"], help="pebble: which runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.steps is None:
        args.steps = {"clip": 1000, "rl": 300_000, "pebble": 30_000}.get(args.benchmark, 0)
    run = {"preference": bench_preference, "clip": bench_clip, "rl": bench_rl, "pebble": bench_pebble}[args.benchmark]
    result = {**run(args), "torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    print(json.dumps(result, indent=2))
    write_results(args.out, args, None, {"torch_threads": torch.get_num_threads()}, result)


if __name__ == "__main__":
    main()
