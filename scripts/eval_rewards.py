"""Score recorded rollouts with reward modules:
`python -m scripts.eval_rewards rollouts=PATH reward=NAME[,NAME...] [NAME.field=value ...] [key=value ...]`.

PATH is a rollout `.npz` (envs/recorder.py layout) or a folder of them; each NAME is a config of
scripts/conf/reward/, whose fields `NAME.field=value` overrides (e.g. `preference.path=RUN/reward_model.safetensors`,
`clip.checkpoint=runs/clip_reach`). Per module, and for the recorded reward itself as a reference:
Pearson / Spearman with the recorded reward, EPIC distance to the env's reward function, preference accuracy on
segment pairs and success-detection AUROC (rewards/evaluation.py). Writes into `out`: report.json, report.md (the
table), rewards.png (reward curves) and rewards.mp4 (the first episodes' frames, reward curves drawn under them).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium
import imageio.v2 as imageio
import matplotlib
import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import envs  # noqa: E402,F401  (registers crlab/ envs)
from agents import resolve_device  # noqa: E402
from rewards.evaluation import Rollouts, env_reward_fn, evaluate_module, load_rollouts  # noqa: E402
from rewards.from_config import reward_from_config  # noqa: E402
from scripts.cli import check_keys, check_reward_config, unknown_key_message, user_errors  # noqa: E402

CONF = Path(__file__).resolve().parent / "conf"
REFERENCE = "env reward"
COLUMNS = (("pearson", "Pearson"), ("spearman", "Spearman"), ("epic", "EPIC distance"),
           ("preference_accuracy", "preference accuracy"), ("success_auroc", "success AUROC"))


# --- command line --------------------------------------------------------------------------------------------
def _merge(base: DictConfig, overrides: list[str], where: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, OmegaConf.from_dotlist(overrides))
    except ConfigKeyError:
        for override in overrides:
            message = unknown_key_message(base, override.split("=", 1)[0])
            if message:
                raise ValueError(f"{where}: {message}") from None
        raise


# scripts/conf/eval_rewards.yaml's numbers: name -> (rule, accepts null), as scripts.cli.check_keys reads them
KEYS = {"pairs": ("int > 0", False), "segment_length": ("int > 0", False), "epic_transitions": ("int > 0", False),
        "epic_states": ("int > 0", False), "epic_actions": ("int > 0", False), "video_episodes": ("int >= 0", False),
        "seed": ("int >= 0", False), "gamma": ("number >= 0", False)}


def parse_args(argv: list[str]) -> tuple[DictConfig, dict[str, DictConfig]]:
    """`key=value` arguments -> the script's config and one reward config per requested name."""
    cfg = OmegaConf.load(CONF / "eval_rewards.yaml")
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.env_kwargs, False)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ValueError(f"arguments are key=value, got {bad}")
    names = next((a.split("=", 1)[1] for a in argv if a.startswith("reward=")), "")
    names = [n for n in dict.fromkeys(n.strip() for n in names.split(",")) if n and n != "none"]
    known = sorted(p.stem for p in (CONF / "reward").glob("*.yaml"))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known rewards: {known}")
    per_module = {n: [a for a in argv if a.startswith(f"{n}.")] for n in names}
    top = [a for a in argv if not any(a.startswith(f"{n}.") for n in names)]
    cfg = _merge(cfg, top, "eval_rewards")
    modules = {}
    for name in names:
        base = OmegaConf.load(CONF / "reward" / f"{name}.yaml")
        OmegaConf.set_struct(base, True)
        modules[name] = _merge(base, [a[len(name) + 1 :] for a in per_module[name]], f"reward {name!r}")
        check_reward_config(modules[name], f"{name}.")
    if cfg.rollouts is None or not names:
        raise ValueError("usage: python -m scripts.eval_rewards rollouts=PATH reward=NAME[,NAME...] (NAME from "
                         f"{known})")
    check_keys(cfg, KEYS)
    resolve_device(cfg.device)
    return cfg, modules


# --- outputs -------------------------------------------------------------------------------------------------
def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def format_metric(value: float | str | None) -> str:
    """'–' for a metric not computed, a word (e.g. 'undefined') as is, else three decimals."""
    return "–" if value is None else value if isinstance(value, str) else f"{value:.3f}"


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per reward, one column per metric; '–' where a metric is undefined."""
    fmt = format_metric
    lines = ["| reward | " + " | ".join(title for _, title in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt(m.get(key)) for key, _ in COLUMNS) + " |" for name, m in results.items()]
    return "\n".join(lines) + "\n"


def episode_rows(data: Rollouts, episodes: int) -> np.ndarray:
    """Rows of the first `episodes` episodes, in order."""
    first = np.unique(data.arrays["episode"])[:episodes]
    return np.flatnonzero(np.isin(data.arrays["episode"], first))


def plot_rewards(rewards: dict[str, np.ndarray], data: Rollouts, path: Path, episodes: int = 3) -> None:
    """rewards.png: standardised reward of each module against the env's, over the first episodes."""
    rows = episode_rows(data, episodes)
    modules = [n for n in rewards if n != REFERENCE] or [REFERENCE]
    fig, axes = plt.subplots(len(modules), 1, figsize=(9, 2.2 * len(modules)), sharex=True, squeeze=False)
    boundaries = np.flatnonzero(data.arrays["step"][rows] == 0)[1:]
    for ax, name in zip(axes[:, 0], modules):
        ax.plot(_standardise(rewards[REFERENCE])[rows], color="black", lw=1.2, label=REFERENCE)
        if name != REFERENCE:
            ax.plot(_standardise(rewards[name])[rows], lw=1.2, label=name)
        for b in boundaries:
            ax.axvline(b - 0.5, color="grey", lw=0.5, ls="--")
        ax.set_ylabel("standardised")
        ax.legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("transition (episodes separated by dashed lines)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reward_video(rewards: dict[str, np.ndarray], data: Rollouts, path: Path, episodes: int, fps: int) -> None:
    """rewards.mp4: each frame of the first episodes above the standardised reward curves, a cursor at its step."""
    rows = episode_rows(data, episodes)
    frames = data.arrays["frames"][rows]
    scale = max(1, -(-320 // frames.shape[2]))  # nearest-neighbour upscaling to at least 320 px wide
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    width = frames.shape[2]
    dpi = 100
    fig, ax = plt.subplots(figsize=(width / dpi, max(1.6, 0.5 * width / dpi)), dpi=dpi)
    steps = np.arange(len(rows))
    for name, values in rewards.items():
        ax.plot(steps, _standardise(values)[rows], lw=1.5 if name == REFERENCE else 1.0,
                color="black" if name == REFERENCE else None, label=name)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_yticks([])
    ax.legend(loc="upper left", fontsize=6, ncol=min(3, len(rewards)))
    fig.tight_layout(pad=0.2)
    fig.canvas.draw()
    panel = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    panel_width = panel.shape[1]
    cursor_x = ax.transData.transform(np.stack([steps, np.zeros_like(steps)], 1))[:, 0].round().astype(int)
    plt.close(fig)
    if panel_width != width:  # figure sizes round; pad or crop the panel to the frame width
        panel = np.pad(panel, ((0, 0), (0, max(0, width - panel_width)), (0, 0)), constant_values=255)[:, :width]
    video = []
    for t, frame in enumerate(frames):
        under = panel.copy()
        x = int(np.clip(cursor_x[t], 0, width - 2))
        under[:, x : x + 2] = (220, 30, 30)
        video.append(np.concatenate([frame, under], axis=0))
    height = len(video[0]) - len(video[0]) % 2  # even sizes for the H.264 encoder
    video = [v[:height, : width - width % 2] for v in video]
    imageio.mimwrite(path, video, format="FFMPEG", fps=fps, macro_block_size=1)


# --- main ----------------------------------------------------------------------------------------------------
def evaluate_rollouts(cfg: DictConfig, module_cfgs: dict[str, DictConfig]) -> Path:
    """Load the rollouts, score them with every module, write the four outputs; returns the output folder."""
    data = load_rollouts(cfg.rollouts)
    device = resolve_device(cfg.device)
    notes: list[str] = []
    env = None
    try:
        env = gymnasium.make(data.env_id, **OmegaConf.to_container(cfg.env_kwargs)) if data.env_id else None
    except gymnasium.error.Error as err:
        notes.append(f"cannot make env {data.env_id!r} for its reward function: {err}")
    gt_fn, why = env_reward_fn(data, env)
    if why:
        notes.append(f"EPIC distance left out: {why}")
    settings = {k: cfg[k] for k in ("gamma", "pairs", "segment_length", "epic_transitions", "epic_states",
                                    "epic_actions", "seed")}
    modules = {REFERENCE: None}  # every module built before any is scored: one that cannot load fails first
    for name, module_cfg in module_cfgs.items():
        modules[name] = reward_from_config(OmegaConf.to_container(module_cfg, resolve=True), None, None, device,
                                           discount=cfg.gamma, env_id=data.env_id)  # shaping: EPIC's γ
    results, rewards = {}, {}
    for name, module in modules.items():
        results[name], rewards[name] = evaluate_module(module, data, gt_fn, **settings)
        epic = results[name].get("epic")
        if isinstance(epic, str):  # "undefined: why" (a pure potential shaping): the reason goes to the notes
            results[name]["epic"] = "undefined"
            notes.append(f"{name}: EPIC distance {epic}")
        print(f"{name}: " + ", ".join(f"{k}={format_metric(v)}" for k, v in results[name].items()))

    out = Path(cfg.out) if cfg.out else Path("runs") / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_eval_rewards"
    out.mkdir(parents=True, exist_ok=True)
    report = {"rollouts": [str(f) for f in data.files], "env_id": data.env_id, "transitions": len(data),
              "episodes": int(len(np.unique(data.arrays["episode"]))), "settings": settings,
              "rewards": results, "notes": notes}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    table = markdown_table(results)
    (out / "report.md").write_text(f"# Reward evaluation: {data.env_id}, {len(data)} transitions\n\n{table}"
                                   + "".join(f"\n- {n}" for n in notes) + "\n")
    plot_rewards(rewards, data, out / "rewards.png")
    if cfg.video_episodes > 0:
        reward_video(rewards, data, out / "rewards.mp4", cfg.video_episodes, data.fps)
    print(table)
    return out


def main(argv: list[str]) -> None:
    with user_errors():
        cfg, modules = parse_args(argv)
        out = evaluate_rollouts(cfg, modules)
    print(f"report: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
