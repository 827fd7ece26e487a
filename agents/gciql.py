"""Goal-conditioned implicit Q-learning (GCIQL; Kostrikov et al. 2022's IQL with goals, as OGBench runs it), an
offline baseline beside CRL and GCBC on the same hindsight-goal buffer and networks.

Goals are relabelled as online CRL does: the achieved goal k >= 1 steps later in the same trajectory
(k ~ Geometric(1 - discount)), or, for a `random_goals` share of the batch, another row's goal. The reward is the
sparse hindsight one: 0 when the next state achieves the goal (k = 1), else -1, and the episode of that goal ends
there (no bootstrap). Three losses per step:

    value   expectile regression of V(s, g) towards min_i Q_target_i(s, a, g)        (expectile tau, IQL)
    critic  (r + discount * (1 - reached) * V(s', g) - Q_i(s, a, g))^2 for both Q_i
    actor   advantage-weighted regression: -exp(beta * (Q - V)) * log pi(a | s, g), weights clipped at 100
            (actor_loss=awr), or DDPG+BC (actor_loss=ddpgbc, OGBench's default for GCIQL):
            -min_i Q_i(s, tanh(mu(s, g)), g) / mean|Q| - alpha * log pi(a | s, g), on the trajectory goals only
            (OGBench's actor_p_randomgoal = 0; it sets alpha 0.03 on its noisy datasets, 0.3 by default)

Offline only: `agent=gciql agent.dataset=PATH` (a scripts.make_dataset file).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from gymnasium import spaces

from agents.goal_buffer import OfflineGoalAgent
from agents.networks import TanhGaussianPolicy, mlp

ACTOR_LOSSES = ("awr", "ddpgbc")


@dataclass
class GCIQLConfig:
    """Hyper-parameters of GCIQL; every field is a key of `scripts/conf/agent/gciql.yaml`."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = True
    lr: float = 3e-4
    batch_size: int = 256
    discount: float = 0.99
    expectile: float = 0.9  # tau of the value's expectile regression
    actor_loss: str = "awr"  # awr (advantage-weighted regression) or ddpgbc (DDPG + behaviour cloning)
    beta: float = 3.0  # AWR inverse temperature
    alpha: float = 0.3  # DDPG+BC's behaviour-cloning weight
    target_tau: float = 0.005  # Polyak rate of the target critics
    random_goals: float = 0.3  # share of the batch whose goals are other rows' (OGBench: p_randomgoal)
    dataset: str | None = None  # the goal dataset to learn from (required)

    def __post_init__(self) -> None:
        if self.actor_loss not in ACTOR_LOSSES:
            raise ValueError(f"actor_loss={self.actor_loss!r} must be one of {', '.join(ACTOR_LOSSES)}")
        if self.alpha < 0:
            raise ValueError(f"alpha={self.alpha} must be >= 0")


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared loss of diff = target - prediction (B,): weight `expectile` above, 1 - expectile below."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


def hindsight_reward(offset: torch.Tensor, swapped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse goal reward and whether the goal was reached (B,) from the future offset k of each row's goal: the
    next state achieves it when k = 1; a swapped-in random goal is never reached."""
    reached = (offset == 1) & ~swapped
    return reached.float() - 1.0, reached.float()


class GCIQLAgent(OfflineGoalAgent):
    """GCIQL for GoalEnv-style Dict observations and Box actions in [-1, 1]; acts for the desired goal."""

    name = "gciql"

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, cfg: GCIQLConfig, num_envs: int,
                 max_episode_steps: int, device: torch.device) -> None:
        super().__init__(observation_space, action_space, max_episode_steps, device)
        self.cfg = cfg
        s, a, g = self.dims["observations"], self.dims["actions"], self.dims["achieved_goals"]
        self.value = mlp(s + g, cfg.hidden, 1, cfg.layer_norm).to(device)
        self.critics = torch.nn.ModuleList([mlp(s + a + g, cfg.hidden, 1, cfg.layer_norm) for _ in range(2)]).to(device)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor = TanhGaussianPolicy(s + g, a, cfg.hidden, cfg.layer_norm).to(device)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)

    def q_values(self, critics: torch.nn.ModuleList, obs: torch.Tensor, action: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(2, B) Q_i(s, a, g) of both critics."""
        x = torch.cat([obs, action, goal], -1)
        return torch.stack([q(x).squeeze(-1) for q in critics])

    def update(self) -> dict[str, torch.Tensor]:
        """One value, critic and actor step on a batch of hindsight-relabelled transitions."""
        return self.update_on(self.sample(self.cfg.batch_size, self.cfg.discount))

    def update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The three IQL steps on a buffer batch {observation, action, goal, next_observation, has_next, offset}."""
        cfg = self.cfg
        obs, action, goal, next_obs = batch["observation"], batch["action"], batch["goal"], batch["next_observation"]
        swapped = torch.rand(len(goal), device=goal.device) < cfg.random_goals
        trajectory_goal = goal  # the relabelled goal of the row's own trajectory (DDPG+BC's actor reads only these)
        goal = torch.where(swapped[:, None], goal[torch.randperm(len(goal), device=goal.device)], goal)
        reward, reached = hindsight_reward(batch["offset"], swapped)

        with torch.no_grad():
            target_q = self.q_values(self.target_critics, obs, action, goal).min(0).values
        value = self.value(torch.cat([obs, goal], -1)).squeeze(-1)
        value_loss = expectile_loss(target_q - value, cfg.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()

        with torch.no_grad():  # rows ending their episode store no next observation: reached (k = 1) or cut off there
            next_value = self.value(torch.cat([next_obs, goal], -1)).squeeze(-1)
            target = reward + cfg.discount * (1.0 - reached) * batch["has_next"] * next_value
        q = self.q_values(self.critics, obs, action, goal)
        critic_loss = (q - target).pow(2).mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critics.parameters(), self.target_critics.parameters()):
                tp.lerp_(p, cfg.target_tau)

        if cfg.actor_loss == "awr":
            with torch.no_grad():
                advantage = target_q - value.detach()
                weight = torch.exp(cfg.beta * advantage).clamp(max=100.0)
            actor_loss = -(weight * self.actor.log_prob(torch.cat([obs, goal], -1), action)).mean()
            extra = {"advantage_weight": weight.mean()}
        else:  # DDPG+BC; the critics' gradients from it are cleared by their next zero_grad
            x = torch.cat([obs, trajectory_goal], -1)
            q_pi = self.q_values(self.critics, obs, self.actor(x, deterministic=True)[0], trajectory_goal).min(0).values
            bc_loss = -self.actor.log_prob(x, action).mean()
            actor_loss = -q_pi.mean() / q_pi.abs().mean().detach().clamp_min(1e-6) + cfg.alpha * bc_loss
            extra = {"bc_loss": bc_loss.detach()}
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.num_updates += 1
        return {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "value": value.detach().mean(), **extra}

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value.state_dict(), "critics": self.critics.state_dict(),
                "target_critics": self.target_critics.state_dict(), "actor": self.actor.state_dict(),
                "value_opt": self.value_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("value", "critics", "target_critics", "actor", "value_opt", "critic_opt", "actor_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.num_updates = int(state["num_updates"])
