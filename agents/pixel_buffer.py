"""Replay buffer of frame-stacked pixel transitions (CURL) that stores each rendered frame once.

A frame-stacked env's observation is its last k frames, and a transition's next observation is the observation
shifted by one frame plus the newest one (the true final observation of an episode included). So, as DrQ-v2
does, the buffer keeps a store of single uint8 frames (F, 3, H, W) and, per transition, the k + 1 frame rows it
is made of: obs = frames of rows [0, k), next_obs = frames of rows [1, k + 1), gathered at sampling time on the
buffer's device. Each env step stores one new frame (the next observation's newest); an episode's first
observation stores its k frames (however the env padded them: CURL and DrQ-v2 repeat the first frame). About
3 x H x W bytes per transition instead of 3 (k + 1) x H x W: 100k transitions of 100x100 frames take ~3.1 GB.

The frame store is sized for full-length episodes; if shorter ones (terminations) make it wrap onto frames that
the oldest transitions still use, those transitions are left out of sampling until overwritten (sampling stays
uniform over the rest). Index bookkeeping lives on the host, so adding a step needs no device-to-host sync.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FRAME_CHANNELS = 3  # RGB


def available_bytes(device: torch.device) -> int:
    """Memory that can still be allocated on `device`: free CUDA memory, or the host's MemAvailable (the "meta"
    device, which allocates nothing, has no limit)."""
    if device.type == "meta":
        return 2**62
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_AVPHYS_PAGES")) * os.sysconf("SC_PAGE_SIZE")


class PixelReplayBuffer:
    """Circular buffer of `capacity` transitions (obs (3k, H, W) uint8, action (A,), reward, not_done, next obs)
    from `num_envs` env copies stepped together; `episode_steps` (the longest episode) sizes the frame store."""

    def __init__(self, obs_shape: tuple[int, int, int], action_dim: int, capacity: int, device: torch.device,
                 num_envs: int = 1, episode_steps: int | None = 1000) -> None:
        c, h, w = obs_shape
        if c % FRAME_CHANNELS:
            raise ValueError(f"pixel observations need 3 * frame_stack channels, got {c}")
        self.k, self.frame_shape = c // FRAME_CHANNELS, (FRAME_CHANNELS, h, w)
        self.capacity, self.device, self.num_envs = capacity, device, num_envs
        # one frame per stored transition, plus each episode's first stack and the stacks still being extended
        self.frame_capacity = capacity + self.k * (math.ceil(capacity / max(episode_steps or 1000, 1)) + 2 * num_envs)
        self.check_fits(action_dim)
        self.frames = torch.empty(self.frame_capacity, *self.frame_shape, dtype=torch.uint8, device=device)  # pages fill as written
        self.frame_rows = torch.zeros(capacity, self.k + 1, dtype=torch.long, device=device)
        self.action = torch.zeros(capacity, action_dim, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.not_done = torch.zeros(capacity, device=device)  # 0 after a true terminal state (not a time limit)
        self.valid = torch.ones(capacity, dtype=torch.bool, device=device)
        self.pos, self.size = 0, 0
        # host bookkeeping: frames written so far, each copy's current stack (rows and write counts), and the
        # write count of each transition's oldest frame (to find the transitions a wrapped frame store broke)
        self.frames_written = 0
        self.stack_rows = np.zeros((num_envs, self.k), dtype=np.int64)
        self.stack_counts = np.zeros((num_envs, self.k), dtype=np.int64)
        self.oldest_frame = np.zeros(capacity, dtype=np.int64)
        self.fresh = np.ones(num_envs, dtype=bool)  # the next observation starts an episode
        self.num_invalid = 0
        self.adds = 0

    def nbytes(self, action_dim: int) -> int:
        """Bytes this buffer's tensors take."""
        per_transition = (self.k + 1) * 8 + (action_dim + 2) * 4 + 1
        return self.frame_capacity * math.prod(self.frame_shape) + self.capacity * per_transition

    def check_fits(self, action_dim: int) -> None:
        """A clear error, before anything is allocated, if the buffer cannot fit in the device's free memory."""
        need, free = self.nbytes(action_dim), available_bytes(self.device)
        if need > free:
            h, w = self.frame_shape[1:]
            raise ValueError(f"buffer_size={self.capacity}: the pixel replay buffer needs {need / 2**30:.1f} GB "
                             f"({self.frame_capacity} frames of 3x{h}x{w} uint8) on {self.device}, but only "
                             f"{free / 2**30:.1f} GB is free; lower agent.buffer_size (or set agent.buffer_device=cpu)")

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
            terminated: torch.Tensor | np.ndarray, episode_end: np.ndarray | None = None) -> None:
        """Append one vector step of the `num_envs` copies: obs / next_obs (N, 3k, H, W) uint8, action (N, A),
        reward (N,), terminated (N,) bool; `episode_end` (N,) bool (terminated | truncated; default: terminated)
        says which copies start a new episode at the next step."""
        n, k = self.num_envs, self.k
        if obs.shape[0] != n:
            raise ValueError(f"PixelReplayBuffer of {n} env copies got a step of {obs.shape[0]}")
        if self.adds < 2 and not torch.equal(next_obs[:, :-FRAME_CHANNELS], obs[:, FRAME_CHANNELS:]):
            raise ValueError("next observations are not the observations shifted by one frame; PixelReplayBuffer "
                             "needs a frame-stacked env that passes the true final observation at episode ends")
        fresh = np.flatnonzero(self.fresh)
        new = len(fresh) * k + n
        counts = self.frames_written + np.arange(new)
        rows = counts % self.frame_capacity
        frames = next_obs[:, -FRAME_CHANNELS:]
        if len(fresh):
            start = obs[torch.as_tensor(fresh, device=obs.device)].reshape(len(fresh) * k, *self.frame_shape)
            frames = torch.cat([start, frames])
            self.stack_rows[fresh] = rows[: len(fresh) * k].reshape(-1, k)
            self.stack_counts[fresh] = counts[: len(fresh) * k].reshape(-1, k)
        self.frames[torch.as_tensor(rows, device=self.device)] = frames.to(self.device)
        self.frames_written += new

        slots = (self.pos + np.arange(n)) % self.capacity
        slots_t = torch.as_tensor(slots, device=self.device)
        self.frame_rows[slots_t] = torch.as_tensor(np.concatenate([self.stack_rows, rows[-n:, None]], 1), device=self.device)
        self.action[slots_t] = action.to(self.device, torch.float32)
        self.reward[slots_t] = reward.to(self.device, torch.float32)
        self.not_done[slots_t] = 1.0 - torch.as_tensor(terminated, device=self.device).to(torch.float32)
        self.oldest_frame[slots] = self.stack_counts[:, 0]
        self.stack_rows = np.concatenate([self.stack_rows[:, 1:], rows[-n:, None]], 1)
        self.stack_counts = np.concatenate([self.stack_counts[:, 1:], counts[-n:, None]], 1)
        end = terminated if episode_end is None else episode_end
        self.fresh = (end.cpu().numpy() if isinstance(end, torch.Tensor) else np.asarray(end)).astype(bool)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.adds += 1
        self._mark_broken(slots)

    def _mark_broken(self, written: np.ndarray) -> None:
        """Transitions whose oldest frame the frame store has overwritten leave sampling; rewritten slots return."""
        if self.num_invalid:
            self.valid[torch.as_tensor(written, device=self.device)] = True
        overwritten_below = self.frames_written - self.frame_capacity  # frames written before this are gone
        broken = np.flatnonzero(self.oldest_frame[: self.size] < overwritten_below)
        self.num_invalid = len(broken)
        if self.num_invalid:
            self.valid[: self.size] = True
            self.valid[torch.as_tensor(broken, device=self.device)] = False

    def __len__(self) -> int:
        return self.size

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs, next_obs (B, 3k, H, W) uint8 of transitions `idx` (B,)."""
        stacks = self.frames[self.frame_rows[idx]]  # (B, k + 1, 3, H, W)
        b, _, c, h, w = stacks.shape
        return stacks[:, :-1].reshape(b, self.k * c, h, w), stacks[:, 1:].reshape(b, self.k * c, h, w)

    @torch.no_grad()
    def relabel(self, reward_fn: "Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]",
                chunk_size: int = 1024) -> None:
        """Overwrite every stored reward with reward_fn(obs, action, next_obs) (float frame stacks (B, C, H, W),
        stored actions in [-1, 1]), `chunk_size` rows at a time on the buffer's device."""
        for start in range(0, self.size, chunk_size):
            rows = torch.arange(start, min(start + chunk_size, self.size), device=self.device)
            obs, next_obs = self._gather(rows)
            self.reward[rows] = reward_fn(obs.float(), self.action[rows], next_obs.float()).to(self.device, torch.float32)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Uniform batch: obs, next_obs (B, C, H, W) uint8, action (B, A), reward (B,), not_done (B,)."""
        if self.size == 0:
            raise RuntimeError("PixelReplayBuffer.sample called on an empty buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        if self.num_invalid:  # redraw the left-out ones from the rest: uniform over the valid transitions
            valid = self.valid[: self.size]
            redraw = torch.multinomial(valid.float(), batch_size, replacement=True)
            idx = torch.where(valid[idx], idx, redraw)
        obs, next_obs = self._gather(idx)
        return {"obs": obs, "next_obs": next_obs, "action": self.action[idx], "reward": self.reward[idx],
                "not_done": self.not_done[idx]}
