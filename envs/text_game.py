"""Shared face of the text games: a printable-ASCII text space, a text-to-frame renderer and the oracle hooks.

A text game is a `BatchedTask` whose observation holds a `"text"` (the whole prompt, options included) and an
`"options"` string (the K options, one per line), both as `(N,)` object arrays of `str` in the batched form.
The task knows the best action under its hidden reward (`oracle_action`), which the env faces expose.
"""

from __future__ import annotations

import abc
import string
import textwrap
from functools import lru_cache
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from PIL import Image, ImageDraw, ImageFont

from envs.batched import BatchedEnv, BatchedTask, BatchedVectorEnv

TEXT_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"
TEXT_METADATA = {"render_modes": ["rgb_array"], "render_fps": 2}
FRAME_SIZE = (480, 360)  # (W, H) of rendered frames
FONT_SIZE = 13


def text_space(max_length: int) -> spaces.Text:
    """A `Text` space of printable ASCII (letters, digits, punctuation, space, newline)."""
    return spaces.Text(max_length=max_length, min_length=1, charset=TEXT_CHARSET)


def text_batch(texts: list[str]) -> np.ndarray:
    """(N,) object array of `str`, the batched form of a `Text` leaf."""
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def draw_text(text: str, width: int = FRAME_SIZE[0], height: int = FRAME_SIZE[1]) -> np.ndarray:
    """(H, W, 3) uint8 frame with `text` wrapped in black on white; lines past the bottom are cut."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    columns = max(10, int(width / (0.55 * FONT_SIZE)))
    lines = [wrapped for line in text.split("\n") for wrapped in (textwrap.wrap(line, columns) or [""])]
    line_height = FONT_SIZE + 4
    for row, line in enumerate(lines[: max(1, (height - 8) // line_height)]):
        draw.text((6, 4 + row * line_height), line, fill="black", font=font)
    return np.asarray(image, dtype=np.uint8)


class TextGameTask(BatchedTask):
    """A batched text game: subclasses also give the current text of a copy and its oracle action."""

    metadata = TEXT_METADATA

    @abc.abstractmethod
    def text(self, copy: int) -> str:
        """The current observation text of one copy (what `render` draws)."""

    @abc.abstractmethod
    def oracle_action(self, copy: int) -> int:
        """Best action of one copy under the hidden ground-truth reward."""

    def render(self, copy: int) -> np.ndarray:
        """(360, 480, 3) uint8 frame of one copy's whole prompt, drawn as text."""
        return draw_text(self.text(copy))


class TextGameEnv(BatchedEnv):
    """Single-env face of a `TextGameTask` (a batch of one), with the oracle's action."""

    metadata = TEXT_METADATA

    def oracle_action(self) -> int:
        """Best action under the hidden ground-truth reward."""
        return self.task.oracle_action(0)


class TextGameVectorEnv(BatchedVectorEnv):
    """Vector face of a `TextGameTask`: episodes end by themselves, so no time limit by default."""

    def oracle_actions(self) -> np.ndarray:
        """(N,) best action of every copy under the hidden ground-truth reward."""
        return np.array([self.task.oracle_action(i) for i in range(self.num_envs)], dtype=np.int64)


class NumericView(gymnasium.vector.VectorWrapper):
    """Keep the numeric (Box) entries of a text game's dict observation, the views our state policies read
    (Gymnasium's FilterObservation refuses same-step autoreset envs)."""

    def __init__(self, env: gymnasium.vector.VectorEnv) -> None:
        super().__init__(env)
        space = env.single_observation_space
        self.keys = [k for k, s in space.items() if isinstance(s, gymnasium.spaces.Box)]
        self.single_observation_space = gymnasium.spaces.Dict({k: space[k] for k in self.keys})
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict]:
        obs, info = self.env.reset(**kwargs)
        return {k: obs[k] for k in self.keys}, info

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = {**info, "final_obs": {k: info["final_obs"][k] for k in self.keys}}
        return {k: obs[k] for k in self.keys}, reward, terminated, truncated, info
