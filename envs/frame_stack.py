"""Frame stacks of N env copies, as CURL and DrQ-v2 feed pixels to an agent: the last k RGB frames of each copy,
channels first, oldest first; a fresh stack (after a reset) repeats its first frame k times."""

from __future__ import annotations

import numpy as np


class FrameStack:
    """(N, k, 3, S, S) uint8 frames; observations are (N, 3k, S, S)."""

    def __init__(self, num_envs: int, k: int, size: int) -> None:
        self.frames = np.zeros((num_envs, k, 3, size, size), dtype=np.uint8)

    def reset(self, copies: np.ndarray | list[int], frames: np.ndarray) -> None:
        """Start the stacks of `copies` from their first frames (K, 3, S, S)."""
        self.frames[copies] = frames[:, None]

    def push(self, copies: np.ndarray | list[int] | slice, frames: np.ndarray) -> None:
        """Append the newest frames (K, 3, S, S) of `copies`, dropping each stack's oldest."""
        self.frames[copies, :-1] = self.frames[copies, 1:]
        self.frames[copies, -1] = frames

    def observation(self) -> np.ndarray:
        """A copy of all stacks, (N, 3k, S, S)."""
        n, k, c, h, w = self.frames.shape
        return self.frames.reshape(n, k * c, h, w).copy()

    def newest(self, copy: int) -> np.ndarray:
        """Copy `copy`'s newest frame, (3, S, S)."""
        return self.frames[copy, -1]
