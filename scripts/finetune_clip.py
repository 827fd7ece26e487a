"""Train a CLIP reward on an env's own frames: `python -m scripts.finetune_clip env=reach [key=value ...]`.

1. collect: a vector env renders `frames` frames at `frame_size` (all copies each step), each paired with its
   describe() caption, acting at random or with a scripted reacher (policy=scripted, reach only); episodes are
   kept whole, final frame included, for the LIV objective.
2. train: CLIP's contrastive loss on (frame, caption) pairs, from scratch (`model=tiny`, registered below) or from
   any open_clip architecture and `pretrained` tag / weights file; with `liv_weight` > 0, plus the LIV objective
   (rewards/liv.py) on the episodes that end in success, with `task_text` as their language goal.
3. save: an open_clip `local-dir` folder (open_clip_config.json + open_clip_model.safetensors), swapped in
   atomically. It loads as a reward with `reward=clip reward.checkpoint=DIR` (weights only: safetensors).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from tqdm import tqdm

import envs  # noqa: F401  (registers crlab/ envs)
from agents import resolve_device
from envs.reach import scripted_action
from rewards.clip import clip_preprocess
from rewards.liv import clip_contrastive_loss, liv_loss
from scripts.cli import check_env_id, check_keys, start, user_errors

# A small architecture for 64x64 frames, trained from scratch in minutes on a CPU. Its vision tower is open_clip's
# ModifiedResNet (a list of layers): on Reach frames a tiny ViT trained from scratch collapsed to one embedding
# for every frame, while the convolutions pick up the arm and goal positions within a hundred steps.
ARCHITECTURES = {
    "tiny": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
}
# --- data ----------------------------------------------------------------------------------------------------
def scripted_reach_actions(obs: dict[str, np.ndarray], rng: np.random.Generator, noise: float) -> np.ndarray:
    """Reach's scripted actions (N, 2) (envs.reach.scripted_action) plus Gaussian noise (std `noise`) for coverage."""
    speed = scripted_action(obs["observation"], obs["achieved_goal"], obs["desired_goal"])
    return np.clip(speed + noise * rng.standard_normal(speed.shape), -1.0, 1.0)


def collect(cfg: DictConfig) -> dict[str, np.ndarray]:
    """Render `cfg.frames` (frame, caption) pairs from whole episodes of a vector env.

    Returns frames (M, H, W, 3) uint8, captions (M,) str, episode (M,) int, step (M,) int (0 = the reset frame),
    and success (E,) bool per episode; unfinished episodes at the end are dropped.
    """
    if cfg.policy not in ("random", "scripted"):
        raise ValueError(f"policy={cfg.policy!r} is not one of ('random', 'scripted')")
    if cfg.policy == "scripted" and not str(cfg.env.id).startswith("crlab/Reach"):
        raise ValueError(f"policy=scripted is a reacher for crlab/Reach-v0, not {cfg.env.id}; use policy=random")
    kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True)
    if cfg.frame_size is not None:
        kwargs.update(width=cfg.frame_size, height=cfg.frame_size)
    env = gymnasium.make_vec(cfg.env.id, num_envs=cfg.num_envs, max_episode_steps=cfg.env.max_episode_steps,
                             render_mode="rgb_array", **kwargs)
    env.unwrapped.request_final_views("frames", "text")
    env.action_space.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    obs, _ = env.reset(seed=cfg.seed)
    open_episodes: list[list[tuple[np.ndarray, str]]] = [[(f, t)] for f, t in zip(env.render(), env.unwrapped.describe())]
    episodes: list[list[tuple[np.ndarray, str]]] = []
    success: list[bool] = []
    bar = tqdm(total=cfg.frames, unit="frame", desc="collect", dynamic_ncols=True, disable=not cfg.progress)
    while sum(len(e) for e in episodes) < cfg.frames:
        action = scripted_reach_actions(obs, rng, cfg.noise) if cfg.policy == "scripted" else env.action_space.sample()
        obs, _, terminated, truncated, info = env.step(action)
        frames, texts = np.stack(env.render()), list(env.unwrapped.describe())
        done = terminated | truncated
        for i in range(env.num_envs):
            if done[i]:
                open_episodes[i].append((info["final_frames"][i], str(info["final_text"][i])))
                episodes.append(open_episodes[i])
                success.append(bool(info["final_info"].get("is_success", np.zeros(env.num_envs, bool))[i]))
                bar.update(len(open_episodes[i]))
                open_episodes[i] = [(frames[i], texts[i])]
            else:
                open_episodes[i].append((frames[i], texts[i]))
    bar.close()
    env.close()
    return {
        "frames": np.stack([f for e in episodes for f, _ in e]),
        "captions": np.array([t for e in episodes for _, t in e]),
        "episode": np.concatenate([np.full(len(e), k) for k, e in enumerate(episodes)]),
        "step": np.concatenate([np.arange(len(e)) for e in episodes]),
        "success": np.array(success),
    }


# --- model ---------------------------------------------------------------------------------------------------
def build_model(name: str, pretrained: str | None, device: torch.device) -> tuple[torch.nn.Module, Any, dict]:
    """An open_clip model (train mode), its tokenizer and its architecture config."""
    import open_clip

    if name in ARCHITECTURES and name not in open_clip.list_models():
        with tempfile.TemporaryDirectory() as folder:  # open_clip reads the file as it registers it
            (Path(folder) / f"{name}.json").write_text(json.dumps(ARCHITECTURES[name]))
            open_clip.add_model_config(Path(folder) / f"{name}.json")
    if name not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture {name!r}: use one of {sorted(ARCHITECTURES)} or an open_clip name")
    model = open_clip.create_model(name, pretrained=pretrained, device=device)
    return model.train(), open_clip.get_tokenizer(name), open_clip.get_model_config(name)


def save_local_dir(model: torch.nn.Module, model_cfg: dict, out: Path, info: dict[str, Any]) -> None:
    """Write an open_clip `local-dir` folder into a temp folder beside `out`, then swap it in by renames."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    old = out.parent / f".{out.name}.old"
    umask = os.umask(0)
    os.umask(umask)
    try:
        preprocess = {k: v for k, v in model.visual.preprocess_cfg.items()}
        config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess, "crlab": info}
        (tmp / "open_clip_config.json").write_text(json.dumps(config, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "open_clip_model.safetensors"))
        for path in (tmp, *tmp.iterdir()):  # mkdtemp makes a private folder; give the usual permissions
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- training ------------------------------------------------------------------------------------------------
# scripts/conf/finetune_clip.yaml's numbers: name -> (rule, accepts null), as scripts.cli.check_keys reads them
KEYS = {"frame_size": ("int > 0", True), "frames": ("int > 0", False), "num_envs": ("int > 0", False),
        "noise": ("number >= 0", False), "steps": ("int > 0", False), "batch_size": ("int > 0", False),
        "lr": ("number > 0", False), "weight_decay": ("number >= 0", False), "liv_weight": ("number >= 0", False),
        "liv_gamma": ("number > 0", False), "liv_batch_size": ("int > 0", False), "seed": ("int >= 0", False)}


def finetune(cfg: DictConfig) -> Path:
    """Check the settings, build the model, collect, train, save; returns the output folder."""
    check_keys(cfg, KEYS)
    check_env_id(cfg.env.id)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model, tokenizer, model_cfg = build_model(cfg.model, cfg.pretrained, device)  # a bad name: before collecting
    data = collect(cfg)
    preprocess_cfg = dict(model.visual.preprocess_cfg)
    unique, caption_ids = np.unique(data["captions"], return_inverse=True)
    tokens = tokenizer(list(unique)).to(device)  # (U, context)
    frames = torch.as_tensor(data["frames"], device=device)
    caption_ids = torch.as_tensor(caption_ids, device=device)
    episode_start = np.flatnonzero(data["step"] == 0)
    episode_end = np.append(episode_start[1:], len(data["step"])) - 1
    successful = np.flatnonzero(data["success"])
    task_tokens = tokenizer([cfg.task_text]).to(device)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 0
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))

    def encode(frames_uint8: torch.Tensor) -> torch.Tensor:  # (B, H, W, 3) uint8 -> image embeddings (B, D)
        return model.encode_image(clip_preprocess(frames_uint8, preprocess_cfg))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(range(cfg.steps), unit="step", desc="train", dynamic_ncols=True, disable=not cfg.progress)
    for step in bar:
        idx = torch.randint(len(frames), (cfg.batch_size,), generator=generator).to(device)
        scale = model.logit_scale.exp().clamp(max=100)
        text = model.encode_text(tokens[caption_ids[idx]])
        loss = clip_contrastive_loss(encode(frames[idx]), text, scale, caption_ids[idx])
        if cfg.liv_weight > 0 and len(successful) > 0:
            loss = loss + cfg.liv_weight * _liv_batch(model, encode, frames, task_tokens, episode_start, episode_end,
                                                      successful, cfg, scale, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    out = Path(cfg.out)
    info = {"env_id": cfg.env.id, "frames": int(len(frames)), "steps": cfg.steps, "liv_weight": cfg.liv_weight,
            "task_text": cfg.task_text, "example_captions": [str(c) for c in unique[:5]]}
    save_local_dir(model.eval(), model_cfg, out, info)
    return out


def _liv_batch(model: torch.nn.Module, encode: Any, frames: torch.Tensor, task_tokens: torch.Tensor,
               episode_start: np.ndarray, episode_end: np.ndarray, successful: np.ndarray, cfg: DictConfig,
               scale: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """LIV loss on `liv_batch_size` successful episodes: (o_0, o_t, o_{t+1}, o_T) and the task text."""
    pick = successful[torch.randint(len(successful), (cfg.liv_batch_size,), generator=generator).numpy()]
    start, end = episode_start[pick], episode_end[pick]
    t = start + (torch.rand(len(pick), generator=generator).numpy() * (end - start)).astype(np.int64)  # t < end
    rows = torch.as_tensor(np.concatenate([start, t, t + 1, end]), device=frames.device)
    initial, current, following, final = encode(frames[rows]).chunk(4)
    reward = torch.as_tensor((t + 1 == end).astype(np.float32) - 1.0, device=frames.device)  # 0 on reaching o_T
    text = model.encode_text(task_tokens).expand(len(pick), -1)
    return liv_loss(initial, current, following, final, text, reward, cfg.liv_gamma, scale,
                    torch.zeros(len(pick), device=frames.device))


@hydra.main(config_path="conf", config_name="finetune_clip", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors():
        out = finetune(cfg)
    print(f"CLIP checkpoint: {out}  (use: reward=clip reward.checkpoint={out})")


if __name__ == "__main__":
    start(main, Path(__file__).parent / "conf", "finetune_clip")
