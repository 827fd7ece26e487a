"""Goal-conditioned behaviour cloning (GCBC; Lynch et al. 2019, Ghosh et al. 2021), an OGBench baseline: a policy
pi(a | s, g) fit by maximum likelihood to a dataset's actions, with the goal g relabelled as a state the same
trajectory reaches later (k ~ Geometric(1 - discount), the hindsight goals of CRL's buffer). It learns offline only:
`agent=gcbc agent.dataset=PATH` (a scripts.make_dataset file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from agents.base import TensorObs
from agents.goal_buffer import GoalReplayBuffer, buffer_from_dataset, goal_space_dims
from agents.networks import TanhGaussianPolicy


@dataclass
class GCBCConfig:
    """Hyper-parameters of GCBC; every field is a key of `scripts/conf/agent/gcbc.yaml`."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = True
    lr: float = 3e-4
    batch_size: int = 256
    discount: float = 0.99  # of the geometric hindsight-goal offsets
    dataset: str | None = None  # the goal dataset to clone (required)


def gcbc_loss(policy: TanhGaussianPolicy, obs: torch.Tensor, goal: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the dataset's actions (B, A) given states (B, S) and hindsight goals (B, G)."""
    return -policy.log_prob(torch.cat([obs, goal], -1), action).mean()


class GCBCAgent:
    """GCBC for GoalEnv-style Dict observations and Box actions in [-1, 1]; acts for the desired goal."""

    loop = "offline"
    dataset_format = "goal"

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, cfg: GCBCConfig, num_envs: int,
                 max_episode_steps: int, device: torch.device) -> None:
        self.dims = goal_space_dims("gcbc", observation_space, action_space)
        self.cfg, self.device, self.max_episode_steps = cfg, device, max_episode_steps
        self.policy = TanhGaussianPolicy(self.dims["observations"] + self.dims["achieved_goals"], self.dims["actions"],
                                         cfg.hidden, cfg.layer_norm).to(device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, fused=True)
        self.buffer: GoalReplayBuffer | None = None
        self.num_updates = 0

    def set_dataset(self, data: dict[str, np.ndarray]) -> None:
        """The dataset's episodes (agents.goal_dataset layout) become the hindsight-goal buffer."""
        self.buffer = buffer_from_dataset(data, self.dims, self.max_episode_steps, self.device)

    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """obs dict of (N, ...) tensors -> actions (N, A) for the desired goal."""
        action, _ = self.policy(torch.cat([obs["observation"], obs["desired_goal"]], -1), deterministic)
        return action

    def update(self) -> dict[str, torch.Tensor]:
        """One maximum-likelihood step on a batch of (state, hindsight goal, action)."""
        if self.buffer is None:
            raise RuntimeError("gcbc has no dataset: set agent.dataset=FILE (python -m scripts.make_dataset)")
        batch = self.buffer.sample(self.cfg.batch_size, self.cfg.discount)
        loss = gcbc_loss(self.policy, batch["observation"], batch["goal"], batch["action"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.num_updates += 1
        return {"bc_loss": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "opt": self.opt.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
        self.num_updates = int(state["num_updates"])
