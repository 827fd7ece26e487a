"""Render one picture of every registered crlab env for the docs (docs/envs/img/<id>.png).

    python -m scripts.render_env_pictures [--out docs/envs/img] [--width 240] [--steps 5] [--only Reach-v0 ...]

Each picture is the env's own `render()`: `gymnasium.make(id, render_mode="rgb_array")`, `reset(seed=0)`, a few
steps of seeded random actions, then one frame, scaled to `--width` pixels. Text games render their text to a
frame: theirs is the opening prompt at the frame's own width (blank rows under the text cut), so the text stays
legible. Re-run it after adding or changing an env; tests/test_docs.py checks that every id has its picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium
import imageio.v3 as iio
import numpy as np
from PIL import Image

import envs  # noqa: F401  (registers the crlab/ namespace)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "envs" / "img"
TEXT_GAMES = ("crlab/FlightPreference-v0", "crlab/Negotiation-v0", "crlab/InstructionFeedback-v0")


def crlab_env_ids() -> list[str]:
    """Every env id registered under the `crlab/` namespace, in registration order."""
    return [env_id for env_id in gymnasium.registry if env_id.startswith("crlab/")]


def picture_path(env_id: str, out: Path = DEFAULT_OUT) -> Path:
    """Where the picture of `env_id` lives: `crlab/Reach-v0` -> `out/Reach-v0.png`."""
    return out / f"{env_id.removeprefix('crlab/')}.png"


def render_picture(env_id: str, steps: int = 5, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 frame of `env_id` after `reset(seed=seed)` and `steps` seeded random actions."""
    env = gymnasium.make(env_id, render_mode="rgb_array")
    try:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
        return np.asarray(env.render(), dtype=np.uint8)
    finally:
        env.close()


def scaled(frame: np.ndarray, width: int) -> np.ndarray:
    """`frame` (H, W, 3) resized to `width` pixels wide, aspect kept (Lanczos); unchanged if already that wide."""
    h, w = frame.shape[:2]
    if w == width:
        return frame
    image = Image.fromarray(frame).resize((width, max(1, round(h * width / w))), Image.LANCZOS)
    return np.asarray(image)


def trimmed(frame: np.ndarray, margin: int = 8) -> np.ndarray:
    """`frame` (H, W, 3) without the blank rows under its last non-white row (a text frame's unused space)."""
    rows = np.flatnonzero((frame < 250).any(axis=(1, 2)))
    return frame if len(rows) == 0 else frame[: min(len(frame), rows[-1] + 1 + margin)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs (default docs/envs/img)")
    parser.add_argument("--width", type=int, default=240, help="picture width in pixels (text games keep theirs)")
    parser.add_argument("--steps", type=int, default=5, help="random steps after reset(seed=0) before the frame")
    parser.add_argument("--only", nargs="*", default=None, help="ids without 'crlab/' (e.g. Reach-v0); default all")
    args = parser.parse_args(argv)
    ids = crlab_env_ids()
    if args.only:
        unknown = sorted(set(args.only) - {i.removeprefix("crlab/") for i in ids})
        if unknown:
            parser.error(f"unknown ids {unknown}; known: {[i.removeprefix('crlab/') for i in ids]}")
        ids = [i for i in ids if i.removeprefix("crlab/") in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in ids:
        if env_id in TEXT_GAMES:  # the opening prompt: a few random choices may already end the episode
            frame = trimmed(render_picture(env_id, steps=0))
        else:
            frame = scaled(render_picture(env_id, steps=args.steps), args.width)
        path = picture_path(env_id, args.out)
        iio.imwrite(path, frame)
        print(f"{env_id:45s} {frame.shape[1]}x{frame.shape[0]}  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
