"""Goal-conditioned behaviour cloning (GCBC; Lynch et al. 2019, Ghosh et al. 2021), an OGBench baseline: a policy
pi(a | s, g) fit by maximum likelihood to a dataset's actions, with the goal g relabelled as a state the same
trajectory reaches later (k ~ Geometric(1 - discount), the hindsight goals of CRL's buffer). It learns offline only:
`agent=gcbc agent.dataset=PATH` (a scripts.make_dataset file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from gymnasium import spaces

from agents.goal_buffer import OfflineGoalAgent
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


class GCBCAgent(OfflineGoalAgent):
    """GCBC for GoalEnv-style Dict observations and Box actions in [-1, 1]; acts for the desired goal."""

    name = "gcbc"

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, cfg: GCBCConfig, num_envs: int,
                 max_episode_steps: int, device: torch.device) -> None:
        super().__init__(observation_space, action_space, max_episode_steps, device)
        self.cfg = cfg
        self.actor = TanhGaussianPolicy(self.dims["observations"] + self.dims["achieved_goals"], self.dims["actions"],
                                        cfg.hidden, cfg.layer_norm).to(device)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)

    def update(self) -> dict[str, torch.Tensor]:
        """One maximum-likelihood step on a batch of (state, hindsight goal, action)."""
        batch = self.sample(self.cfg.batch_size, self.cfg.discount)
        loss = gcbc_loss(self.actor, batch["observation"], batch["goal"], batch["action"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.num_updates += 1
        return {"bc_loss": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "opt": self.opt.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.opt.load_state_dict(state["opt"])
        self.num_updates = int(state["num_updates"])
