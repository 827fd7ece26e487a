"""Contrastive RL (Eysenbach et al. 2022) with the stabilising choices of Zheng et al. 2023.

The critic never regresses a reward. It learns representations phi(s, a) and psi(g) whose similarity scores how
likely g is to be reached in the discounted future of (s, a): the positive pairs are (s_t, a_t) with the achieved
goal of s_{t+k}, k ~ Geometric(1 - discount) within the same trajectory; the other goals in the batch are the
negatives (InfoNCE). `contrastive_loss=td_infonce` learns the same critic by temporal differences instead (Zheng et
al. 2024): the positive is the next state, plus, with weight `discount`, the target critic's own prediction of the
next state's future, so it can stitch pieces of different trajectories. The actor maximises the critic's score
of its own action for the commanded goal, with a SAC entropy bonus whose temperature is tuned to a target entropy.

Observations follow the GoalEnv convention: dicts with `observation` (the state s), `achieved_goal` (what a
state reaches: the critic's goals) and `desired_goal` (the command). What a goal names is the env's choice
(`env.kwargs.goal_space`, envs/goal_space.py), the same for every agent: e.g. the block and the pusher, with a
command that asks for the pusher behind the block, as Eysenbach et al. set up Fetch push in the env. Which goals a
batch trains on (future goals for the critic; for the actor some from other rows or in the commanded form; episodes
drawn by how far their object moved) is the replay buffer's sampler's business (agents/goal_buffer.py).

Offline (`dataset=PATH`, a goal dataset of scripts.make_dataset): the buffer holds the dataset's episodes and the
run engine takes gradient steps only; `bc_coef` adds a behaviour-cloning term to the actor (as offline CRL and
OGBench's CRL, DDPG+BC, do), which keeps it on the data's actions where the critic is least reliable.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from agents.base import TensorObs, compiled_update
from agents.goal_buffer import GoalMix, GoalReplayBuffer, buffer_from_dataset, goal_space_dims
from agents.networks import TanhGaussianPolicy, encoder
from agents.td_infonce import td_infonce_critic_loss, td_infonce_loss
from envs.goal_space import GoalSpace, object_goal_space

__all__ = ["CRLAgent", "CRLConfig", "critic_diag", "critic_logits", "infonce_loss", "td_infonce_loss"]

ENERGIES = ("dot", "l2", "norm")
CONTRASTIVE_LOSSES = ("forward", "backward", "symmetric", "td_infonce")


@dataclass
class CRLConfig:
    """Hyper-parameters of Contrastive RL; every field is a key of `scripts/conf/agent/crl.yaml`."""

    repr_dim: int = 64
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = True
    depth: int = 0  # 0: the flat `hidden` MLPs; 4, 8, 16, ...: residual networks of that depth (Wang et al. 2025)
    width: int = 256  # width of the residual networks (depth > 0)
    energy: str = "norm"  # dot: phi.psi | l2: -|phi-psi|^2 | norm: -|phi-psi|
    contrastive_loss: str = "symmetric"  # Monte-Carlo InfoNCE directions, or td_infonce (Zheng et al. 2024)
    logsumexp_penalty: float = 0.1
    discount: float = 0.99
    batch_size: int = 256
    critic_lr: float = 3e-4
    actor_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    target_entropy: float | None = None  # None: -action_dim
    buffer_size: int = 1_000_000
    warmup_steps: int = 2_000  # env steps with uniform random actions before learning starts
    updates_per_step: int = 1  # gradient steps per vector-env step
    # the sampler's goal mixture (agents/goal_buffer.py GoalMix): what each batch's goals are drawn from
    actor_random_goals: float = 0.5  # share of the actor's goals drawn from other rows (CRL's random_goals, 0.5 there)
    actor_command_goals: float = 0.0  # share of the actor's goals put in the env goal space's commanded form
    goal_motion_share: float = 0.0  # share of each batch from episodes drawn by how far their object moved
    target_tau: float = 0.005  # td_infonce: Polyak rate of the target critic
    dataset: str | None = None  # a goal dataset (scripts.make_dataset): learn offline from it, no env step
    bc_coef: float = 0.0  # weight of the actor's behaviour-cloning term -log pi(a_data | s, g) (offline CRL, OGBench's DDPG+BC)
    compile: bool = False  # torch.compile the update (losses, backward, optimizer steps)

    def __post_init__(self) -> None:
        if self.depth < 0 or self.depth % 4:
            raise ValueError(f"depth={self.depth} must be 0 (flat MLPs) or a positive multiple of 4 (residual blocks)")
        for name in ("actor_random_goals", "actor_command_goals", "goal_motion_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if self.energy not in ENERGIES:
            raise ValueError(f"energy={self.energy!r} is not one of {ENERGIES}")
        if self.contrastive_loss not in CONTRASTIVE_LOSSES:
            raise ValueError(f"contrastive_loss={self.contrastive_loss!r} is not one of {CONTRASTIVE_LOSSES}")


def critic_logits(sa_repr: torch.Tensor, goal_repr: torch.Tensor, energy: str) -> torch.Tensor:
    """Pairwise scores f(s_i, a_i, g_j): sa_repr (B, D), goal_repr (B, D) -> logits (B, B)."""
    if energy == "dot":
        return sa_repr @ goal_repr.T
    # |x - y|^2 = |x|^2 + |y|^2 - 2 x.y: a (B, B) matmul instead of a (B, B, D) difference tensor (25x faster).
    sq = sa_repr.pow(2).sum(-1, keepdim=True) + goal_repr.pow(2).sum(-1)[None, :] - 2.0 * sa_repr @ goal_repr.T
    sq = sq.clamp_min(0.0)
    return -sq if energy == "l2" else -(sq + 1e-8).sqrt()


def critic_diag(sa_repr: torch.Tensor, goal_repr: torch.Tensor, energy: str) -> torch.Tensor:
    """Matched scores f(s_i, a_i, g_i): (B, D), (B, D) -> (B,). The diagonal of `critic_logits`, in O(B D)."""
    if energy == "dot":
        return (sa_repr * goal_repr).sum(-1)
    sq = (sa_repr - goal_repr).pow(2).sum(-1)
    return -sq if energy == "l2" else -(sq + 1e-8).sqrt()


def infonce_loss(logits: torch.Tensor, kind: str, logsumexp_penalty: float) -> torch.Tensor:
    """InfoNCE over a (B, B) logit matrix whose diagonal holds the positive pairs.

    forward: classify the right goal for each (s, a) (softmax over a row); backward: the right (s, a) for each
    goal (softmax over a column); symmetric: their sum. The penalty c * mean(logsumexp_row^2) keeps the row
    normaliser near zero (Eysenbach et al. 2022, Zheng et al. 2023).
    """
    labels = torch.arange(logits.shape[0], device=logits.device)
    loss = logits.new_zeros(())
    if kind in ("forward", "symmetric"):
        loss = loss + F.cross_entropy(logits, labels)
    if kind in ("backward", "symmetric"):
        loss = loss + F.cross_entropy(logits.T, labels)
    return loss + logsumexp_penalty * torch.logsumexp(logits, dim=1).pow(2).mean()


class ContrastiveCritic(nn.Module):
    """phi(s, a) and psi(g) encoders. With td_infonce the caller folds the commanded goal into s: phi(s, g, a)
    (the future of a goal-conditioned policy depends on its goal)."""

    def __init__(self, obs_dim: int, action_dim: int, goal_dim: int, cfg: CRLConfig) -> None:
        super().__init__()
        self.sa_encoder = encoder(obs_dim + action_dim, cfg.repr_dim, cfg.hidden, cfg.layer_norm, cfg.depth, cfg.width)
        self.goal_encoder = encoder(goal_dim, cfg.repr_dim, cfg.hidden, cfg.layer_norm, cfg.depth, cfg.width)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, S), action (B, A), goal (B, G) -> phi (B, D), psi (B, D)."""
        return self.sa_encoder(torch.cat([obs, action], -1)), self.goal_encoder(goal)


class CRLAgent:
    """Contrastive RL for GoalEnv-style Dict observations and Box actions in [-1, 1]."""

    loop = "online"  # the run engine steps the env for it (scripts/engine.py EnvSource); with agent.dataset: offline
    dataset_format = "goal"  # with agent.dataset: agents.goal_dataset files, learnt from offline

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        cfg: CRLConfig,
        num_envs: int,
        max_episode_steps: int,
        device: torch.device,
    ) -> None:
        self.dims = goal_space_dims("crl", observation_space, action_space)
        self.cfg, self.device, self.num_envs = cfg, device, num_envs
        obs_dim, goal_dim = self.dims["observations"], self.dims["achieved_goals"]
        self.action_dim = int(np.prod(action_space.shape))
        self.td = cfg.contrastive_loss == "td_infonce"
        critic_obs_dim = obs_dim + goal_dim if self.td else obs_dim
        self.critic = ContrastiveCritic(critic_obs_dim, self.action_dim, goal_dim, cfg).to(device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False) if self.td else None
        self.actor = TanhGaussianPolicy(obs_dim + goal_dim, self.action_dim, cfg.hidden, cfg.layer_norm, cfg.depth,
                                        cfg.width).to(device)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=device, requires_grad=True)
        self.target_entropy = -float(self.action_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
        self.max_episode_steps = max_episode_steps
        self.mix = GoalMix(cfg.actor_random_goals, cfg.actor_command_goals, cfg.goal_motion_share)
        self.goal_space = object_goal_space(observation_space)
        self.buffer = GoalReplayBuffer(obs_dim, self.action_dim, goal_dim, num_envs, cfg.buffer_size, max_episode_steps,
                                       device, self.goal_space)
        self.env_steps = 0
        self.offline = False
        self.update_step = compiled_update(self.update_on, cfg.compile, self.device)  # on a given batch
        self.train_step = compiled_update(self.sample_and_update, cfg.compile, self.device)  # draw + update: one graph

    def set_goal_space(self, goal_space: GoalSpace) -> None:
        """The env's goal space (envs/goal_space.py): the sampler puts actor goals in its commanded form and
        measures episode motion on its task part. Without a call: the `object` space (goals as they are)."""
        if goal_space.dim != self.dims["achieved_goals"]:
            raise ValueError(f"goal space {goal_space.name!r} has {goal_space.dim}-wide goals, the env's are "
                             f"{self.dims['achieved_goals']}")
        self.goal_space = self.buffer.goal_space = goal_space

    # --- acting ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """obs dict of (N, ...) tensors -> actions (N, A); uniform random during warm-up when exploring."""
        n = obs["observation"].shape[0]
        if not deterministic and self.env_steps < self.cfg.warmup_steps:
            return torch.rand(n, self.action_dim, device=self.device) * 2 - 1
        action, _ = self.actor(torch.cat([obs["observation"], obs["desired_goal"]], -1), deterministic)
        return action

    def observe(self, obs: TensorObs, action: torch.Tensor, reward: torch.Tensor, next_obs: TensorObs,
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Store one vector step (rewards are not used: CRL learns from reached states alone)."""
        self.buffer.add(obs["observation"], action, next_obs["achieved_goal"], terminated | truncated)
        self.env_steps += self.num_envs

    def set_dataset(self, data: dict[str, np.ndarray]) -> None:
        """Learn offline: the buffer holds the dataset's episodes (agents.goal_dataset layout), relabelled with future
        goals as online; `update` then takes `updates_per_step` gradient steps per call, with no warm-up."""
        self.buffer = buffer_from_dataset(data, self.dims, self.max_episode_steps, self.device, self.goal_space)
        self.offline = True

    # --- learning ----------------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        """`updates_per_step` gradient steps once warm-up is over (offline: at once) and an episode is stored."""
        if (not self.offline and self.env_steps < self.cfg.warmup_steps) or len(self.buffer) == 0:
            return {}
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.updates_per_step):
            metrics = self.train_step()
        return metrics

    def sample_and_update(self) -> dict[str, torch.Tensor]:
        """One update on a fresh replay batch (with compile=true the draw is inside the compiled step)."""
        return self.update_on(self.buffer.draw(self.cfg.batch_size, self.cfg.discount, self.mix))

    def update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One critic, actor and temperature step on a batch of the sampler (GoalReplayBuffer.draw): observation
        (B, S), action (B, A), goal (B, G) (the critic's future goal), actor_goal (B, G) (the actor's goal, of the
        sampler's mixture; default: `goal`); TD InfoNCE also reads next_goal, next_observation and has_next."""
        cfg = self.cfg
        obs, action, goal = batch["observation"], batch["action"], batch["goal"]
        actor_goal = batch.get("actor_goal", goal)

        if self.td:
            energy = lambda phi, psi: critic_logits(phi, psi, cfg.energy)  # noqa: E731
            logits, critic_loss, goal_repr = td_infonce_critic_loss(self.critic, self.target_critic, self.actor, batch,
                                                                    energy, cfg.discount, cfg.logsumexp_penalty)
        else:
            sa_repr, goal_repr = self.critic(obs, action, goal)
            logits = critic_logits(sa_repr, goal_repr, cfg.energy)
            critic_loss = infonce_loss(logits, cfg.contrastive_loss, cfg.logsumexp_penalty)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        if self.td:
            with torch.no_grad():
                for p, tp in zip(self.critic.parameters(), self.target_critic.parameters()):
                    tp.lerp_(p, cfg.target_tau)

        alpha = self.log_alpha.exp().detach()
        if actor_goal is goal:  # no mixture: the critic's goals, whose psi is already computed
            actor_goal_repr = goal_repr.detach()
        else:
            with torch.no_grad():
                actor_goal_repr = self.critic.goal_encoder(actor_goal)
        pi_action, log_prob = self.actor(torch.cat([obs, actor_goal], -1))
        state = torch.cat([obs, actor_goal], -1) if self.td else obs
        pi_sa_repr = self.critic.sa_encoder(torch.cat([state, pi_action], -1))
        q = critic_diag(pi_sa_repr, actor_goal_repr, cfg.energy)
        actor_loss = (alpha * log_prob - q).mean()
        if cfg.bc_coef > 0:  # stay near the data's actions for the relabelled goal (DDPG+BC)
            bc_loss = -self.actor.log_prob(torch.cat([obs, goal], -1), action).mean()
            actor_loss = actor_loss + cfg.bc_coef * bc_loss
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

        with torch.no_grad():
            correct = (logits.argmax(1) == torch.arange(len(logits), device=logits.device)).float().mean()
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha": alpha,
            "entropy": -log_prob.detach().mean(),
            "logits_pos": logits.diagonal().mean().detach(),
            "logits_neg": logits.detach().mean(),
            "categorical_accuracy": correct,
            **({"bc_loss": bc_loss.detach()} if cfg.bc_coef > 0 else {}),
        }

    # --- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "critic": self.critic.state_dict(),
            "actor": self.actor.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "env_steps": self.env_steps,
            **({"target_critic": self.target_critic.state_dict()} if self.td else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.env_steps = int(state["env_steps"])
        if self.td:
            self.target_critic.load_state_dict(state["target_critic"])
