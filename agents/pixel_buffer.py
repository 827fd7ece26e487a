"""Replay buffer of uint8 frame stacks for off-policy agents from pixels (CURL), kept on one device.

A transition's next observation is its observation shifted by one frame plus the newest frame, for every step of
a frame-stacked env (the true final observation of an episode included; a reset is only ever an `obs`). So the
buffer stores the stack once and only the newest frame of the next one: (3k + 3) instead of 6k channels per
transition. `add` checks the shift and raises if an env breaks it.
"""

from __future__ import annotations

from typing import Callable

import torch

FRAME_CHANNELS = 3  # RGB


class PixelReplayBuffer:
    """Circular buffer of (obs (C, H, W) uint8, action (A,), reward, not_done, newest next frame) rows."""

    def __init__(self, obs_shape: tuple[int, int, int], action_dim: int, capacity: int, device: torch.device) -> None:
        c, h, w = obs_shape
        if c % FRAME_CHANNELS:
            raise ValueError(f"pixel observations need 3 * frame_stack channels, got {c}")
        self.capacity, self.device = capacity, device
        self.obs = torch.zeros(capacity, c, h, w, dtype=torch.uint8, device=device)
        self.next_frame = torch.zeros(capacity, FRAME_CHANNELS, h, w, dtype=torch.uint8, device=device)
        self.action = torch.zeros(capacity, action_dim, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.not_done = torch.zeros(capacity, device=device)  # 0 after a true terminal state (not a time limit)
        self.pos, self.size = 0, 0

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
            terminated: torch.Tensor) -> None:
        """Append N rows: obs / next_obs (N, C, H, W) uint8, action (N, A), reward (N,), terminated (N,) bool."""
        if not torch.equal(next_obs[:, :-FRAME_CHANNELS], obs[:, FRAME_CHANNELS:]):
            raise ValueError("next observations are not the observations shifted by one frame; PixelReplayBuffer "
                             "needs a frame-stacked env that passes the true final observation at episode ends")
        n = obs.shape[0]
        rows = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.obs[rows] = obs.to(self.device)
        self.next_frame[rows] = next_obs[:, -FRAME_CHANNELS:].to(self.device)
        self.action[rows] = action.to(self.device, torch.float32)
        self.reward[rows] = reward.to(self.device, torch.float32)
        self.not_done[rows] = 1.0 - terminated.to(self.device, torch.float32)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def __len__(self) -> int:
        return self.size

    @torch.no_grad()
    def relabel(self, reward_fn: "Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]",
                chunk_size: int = 1024) -> None:
        """Overwrite every stored reward with reward_fn(obs, action, next_obs) (float frame stacks (B, C, H, W),
        stored actions in [-1, 1]), `chunk_size` rows at a time on the buffer's device."""
        for start in range(0, self.size, chunk_size):
            rows = torch.arange(start, min(start + chunk_size, self.size), device=self.device)
            obs = self.obs[rows]
            next_obs = torch.cat([obs[:, FRAME_CHANNELS:], self.next_frame[rows]], dim=1)
            reward = reward_fn(obs.float(), self.action[rows], next_obs.float())
            self.reward[rows] = reward.to(self.device, torch.float32)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Uniform batch: obs, next_obs (B, C, H, W) uint8, action (B, A), reward (B,), not_done (B,)."""
        if self.size == 0:
            raise RuntimeError("PixelReplayBuffer.sample called on an empty buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        obs = self.obs[idx]
        return {
            "obs": obs,
            "next_obs": torch.cat([obs[:, FRAME_CHANNELS:], self.next_frame[idx]], dim=1),
            "action": self.action[idx],
            "reward": self.reward[idx],
            "not_done": self.not_done[idx],
        }
