"""Contrastive RL (Eysenbach et al. 2022) with the stabilising choices of Zheng et al. 2023.

The critic never regresses a reward. It learns representations phi(s, a) and psi(g) whose similarity scores how
likely g is to be reached in the discounted future of (s, a): the positive pairs are (s_t, a_t) with the achieved
goal of s_{t+k}, k ~ Geometric(1 - discount) within the same trajectory; the other goals in the batch are the
negatives (InfoNCE). `contrastive_loss=td_infonce` learns the same critic by temporal differences instead (Zheng et
al. 2024): the positive is the next state, plus, with weight `discount`, the target critic's own prediction of the
next state's future, so it can stitch pieces of different trajectories. The actor maximises the critic's score
of its own action for the commanded goal, with a SAC entropy bonus whose temperature is tuned to a target entropy.

Observations follow the GoalEnv convention: dicts with `observation` (the state s) and `desired_goal` (the
command); the critic's goals live in the `achieved_goal` space, optionally extended by coordinates of the state
(`goal_observation_indices`): then the critic learns to reach richer future states, and a command asks for the
desired goal in both parts (`command_from_goal` says which desired-goal coordinate fills each added one). This is
how Eysenbach et al. set up Fetch push (the goal is the object position written into both the gripper and the
object slots of a state): the gripper part of the goal varies under any exploration, the object part only when
the object is touched, so the critic has a signal long before the object moves.

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
from agents.goal_buffer import GoalReplayBuffer, buffer_from_dataset, goal_space_dims
from agents.networks import TanhGaussianPolicy, mlp

ENERGIES = ("dot", "l2", "norm")
CONTRASTIVE_LOSSES = ("forward", "backward", "symmetric", "td_infonce")
COMMAND_SOURCES = ("desired", "achieved", "behind")


@dataclass
class CRLConfig:
    """Hyper-parameters of Contrastive RL; every field is a key of `scripts/conf/agent/crl.yaml`."""

    repr_dim: int = 64
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = True
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
    goal_observation_indices: list[int] = field(default_factory=list)  # state coordinates added to the goal
    command_from_goal: list[int] = field(default_factory=list)  # desired-goal coordinate that fills each of those
    command_source: str = "desired"  # desired: those slots ask for the desired goal | achieved: for the current one |
    # behind: command_offset short of the desired goal on the line from the current one (where a pusher ends a push)
    command_offset: float = 0.05  # behind: metres (Push: block half-size 0.025 + pusher radius 0.02 = contact at 0.045)
    actor_random_goals: float = 0.5  # share of the actor's batch whose goals are other rows' (CRL's random_goals, 0.5 there)
    actor_command_goals: float = 0.0  # share of actor goals put in the command's form: added slots from the state now
    target_tau: float = 0.005  # td_infonce: Polyak rate of the target critic
    goal_motion_share: float = 0.0  # share of each batch from episodes drawn by how far their achieved goal moved
    dataset: str | None = None  # a goal dataset (scripts.make_dataset): learn offline from it, no env step
    bc_coef: float = 0.0  # weight of the actor's behaviour-cloning term -log pi(a_data | s, g) (offline CRL, OGBench's DDPG+BC)
    compile: bool = False  # torch.compile the update (losses, backward, optimizer steps)

    def __post_init__(self) -> None:
        if len(self.goal_observation_indices) != len(self.command_from_goal):
            raise ValueError(f"goal_observation_indices={self.goal_observation_indices} and command_from_goal="
                             f"{self.command_from_goal} must have the same length (one source per added coordinate)")
        for name in ("actor_random_goals", "actor_command_goals", "goal_motion_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if self.command_offset < 0:
            raise ValueError(f"command_offset={self.command_offset} must be >= 0 (metres short of the goal)")
        if self.command_source not in COMMAND_SOURCES:
            raise ValueError(f"command_source={self.command_source!r} is not one of {COMMAND_SOURCES}")
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


def td_infonce_loss(next_logits: torch.Tensor, future_logits: torch.Tensor, target_future_logits: torch.Tensor,
                    discount: float, has_next: torch.Tensor) -> torch.Tensor:
    """TD InfoNCE (Zheng et al. 2024): the discounted future-state distribution as next state, or, with
    probability discount, the future of the next state, read off the target critic.

    next_logits (B, B): f(s_i, a_i, g_i, s'_j), the positive of row i its own next state; future_logits (B, B):
    f(s_i, a_i, g_i, h_j) over candidate goals h_j; target_future_logits (B, B): f_target(s'_i, a'_i, g_i, h_j) with
    a' ~ pi(. | s'_i, g_i), whose softmax over j is the soft label of row i; has_next (B,) masks rows without a
    stored next observation out of the bootstrapped term.
    """
    labels = torch.arange(next_logits.shape[0], device=next_logits.device)
    next_term = F.cross_entropy(next_logits, labels)
    weights = torch.softmax(target_future_logits, dim=1).detach()
    future_term = -(weights * torch.log_softmax(future_logits, dim=1)).sum(1)
    future_term = (future_term * has_next).sum() / has_next.sum().clamp_min(1.0)
    return (1.0 - discount) * next_term + discount * future_term


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
        self.sa_encoder = mlp(obs_dim + action_dim, cfg.hidden, cfg.repr_dim, cfg.layer_norm)
        self.goal_encoder = mlp(goal_dim, cfg.hidden, cfg.repr_dim, cfg.layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, S), action (B, A), goal (B, G) -> phi (B, D), psi (B, D)."""
        return self.sa_encoder(torch.cat([obs, action], -1)), self.goal_encoder(goal)


class CRLAgent:
    """Contrastive RL for GoalEnv-style Dict observations and Box actions in [-1, 1]."""

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
        for name, indices, size in (("goal_observation_indices", cfg.goal_observation_indices, obs_dim),
                                    ("command_from_goal", cfg.command_from_goal, goal_dim)):
            if any(not 0 <= i < size for i in indices):
                raise ValueError(f"{name}={indices} has indices outside 0..{size - 1}")
        self.goal_obs_idx = torch.as_tensor(cfg.goal_observation_indices, dtype=torch.long, device=device)
        self.command_idx = torch.as_tensor(cfg.command_from_goal, dtype=torch.long, device=device)
        goal_dim += len(cfg.goal_observation_indices)
        self.action_dim = int(np.prod(action_space.shape))
        self.td = cfg.contrastive_loss == "td_infonce"
        critic_obs_dim = obs_dim + goal_dim if self.td else obs_dim
        self.critic = ContrastiveCritic(critic_obs_dim, self.action_dim, goal_dim, cfg).to(device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False) if self.td else None
        self.actor = TanhGaussianPolicy(obs_dim + goal_dim, self.action_dim, cfg.hidden, cfg.layer_norm).to(device)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=device, requires_grad=True)
        self.target_entropy = -float(self.action_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
        env_goal_dim = int(np.prod(observation_space["achieved_goal"].shape))
        self.env_goal_dim = env_goal_dim
        self.max_episode_steps = max_episode_steps
        self.buffer = GoalReplayBuffer(obs_dim, self.action_dim, goal_dim, num_envs, cfg.buffer_size, max_episode_steps,
                                       device, motion_dims=env_goal_dim if cfg.goal_motion_share > 0 else 0)
        self.env_steps = 0
        self.offline = False
        self.update_step = compiled_update(self.update_on, cfg.compile, self.device)  # on a given batch
        self.train_step = compiled_update(self.sample_and_update, cfg.compile, self.device)  # draw + update: one graph

    # --- acting ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """obs dict of (N, ...) tensors -> actions (N, A); uniform random during warm-up when exploring."""
        n = obs["observation"].shape[0]
        if not deterministic and self.env_steps < self.cfg.warmup_steps:
            return torch.rand(n, self.action_dim, device=self.device) * 2 - 1
        action, _ = self.actor(torch.cat([obs["observation"], self.command(obs)], -1), deterministic)
        return action

    def command(self, obs: TensorObs) -> torch.Tensor:
        """The critic-space goal (N, G') of a command: the desired goal (N, G), then, in the added state slots, the
        `command_from_goal` coordinates of the desired goal (command_source=desired: e.g. the gripper where the
        object should end) or of the current achieved goal (achieved: the gripper at the object as it is now, so
        the command says "stay at the object and bring it to the goal"), or just short of the goal on the line
        from the object (behind: where a pusher ends a straight push; see `command_slots`)."""
        return torch.cat([obs["desired_goal"], self.command_slots(obs["desired_goal"], obs["achieved_goal"])], -1)

    def command_slots(self, desired: torch.Tensor, achieved: torch.Tensor) -> torch.Tensor:
        """(N, len(command_from_goal)) values of the added slots in a command for env goals `desired` (N, G) from
        states whose goals are `achieved` (N, G), per `command_source` (behind: where a pusher stands once it has
        pushed the object in a straight line from where it is to the goal, `command_offset` short of it)."""
        if self.cfg.command_source == "desired":
            return desired[:, self.command_idx]
        if self.cfg.command_source == "achieved":
            return achieved[:, self.command_idx]
        heading = desired - achieved
        heading = heading / heading.norm(dim=-1, keepdim=True).clamp(min=1e-6)  # 0 where the object is at the goal
        return (desired - self.cfg.command_offset * heading)[:, self.command_idx]

    def reached_goal(self, obs: TensorObs) -> torch.Tensor:
        """The critic-space goal (N, G') a state achieves: its achieved goal and the chosen state coordinates."""
        return torch.cat([obs["achieved_goal"], obs["observation"][:, self.goal_obs_idx]], -1)

    def observe(self, obs: TensorObs, action: torch.Tensor, reward: torch.Tensor, next_obs: TensorObs,
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Store one vector step (rewards are not used: CRL learns from reached states alone)."""
        self.buffer.add(obs["observation"], action, self.reached_goal(next_obs), terminated | truncated)
        self.env_steps += self.num_envs

    def set_dataset(self, data: dict[str, np.ndarray]) -> None:
        """Learn offline: the buffer holds the dataset's episodes (agents.goal_dataset layout), relabelled with future
        goals as online; `update` then takes `updates_per_step` gradient steps per call, with no warm-up."""
        as_tensor = lambda key: torch.as_tensor(data[key], dtype=torch.float32, device=self.device)  # noqa: E731
        next_obs = {"achieved_goal": as_tensor("next_achieved_goals"), "observation": as_tensor("next_observations")}
        self.buffer = buffer_from_dataset(data, self.dims, self.max_episode_steps, self.device,
                                          next_goals=self.reached_goal(next_obs), motion_dims=self.buffer.motion_dims)
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
        return self.update_on(self.buffer.draw(self.cfg.batch_size, self.cfg.discount, self.cfg.goal_motion_share))

    def update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One critic, actor and temperature step on a batch {observation (B,S), action (B,A), goal (B,G)}."""
        cfg = self.cfg
        obs, action, goal = batch["observation"], batch["action"], batch["goal"]

        if self.td:
            logits, critic_loss, goal_repr = self._td_critic_loss(batch)
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
        actor_goal, actor_goal_repr = goal, goal_repr.detach()
        if cfg.actor_random_goals > 0:  # other rows' goals: commands the trajectory did not reach
            swap = torch.rand(len(goal), 1, device=goal.device) < cfg.actor_random_goals
            perm = torch.randperm(len(goal), device=goal.device)
            actor_goal = torch.where(swap, goal[perm], goal)
            actor_goal_repr = torch.where(swap, actor_goal_repr[perm], actor_goal_repr)
        if cfg.actor_command_goals > 0 and len(self.command_idx) > 0:
            actor_goal, actor_goal_repr = self._command_form(batch, actor_goal, actor_goal_repr)
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

    def _command_form(self, batch: dict[str, torch.Tensor], goal: torch.Tensor,
                      goal_repr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Put an `actor_command_goals` share of the actor's goals in the form the actor is commanded with: the env
        goal part kept, the added state slots filled as a command fills them (`command_slots`, from the batch
        state's own goal), so the actor is trained on the kind of goal it is evaluated on."""
        env_goal = goal[:, : self.env_goal_dim]
        command = torch.cat([env_goal, self.command_slots(env_goal, batch["achieved_now"][:, : self.env_goal_dim])], -1)
        swap = torch.rand(len(goal), 1, device=goal.device) < self.cfg.actor_command_goals
        with torch.no_grad():
            command_repr = self.critic.goal_encoder(command)
        return torch.where(swap, command, goal), torch.where(swap, command_repr, goal_repr)

    def _td_critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """TD InfoNCE on a batch: the conditioning goals g_i and the candidate goals h_j are the batch's relabelled
        goals. Returns the (B, B) logits over candidates, the loss and psi of the goals (B, D)."""
        cfg = self.cfg
        obs, action, goal = batch["observation"], batch["action"], batch["goal"]
        phi = self.critic.sa_encoder(torch.cat([obs, goal, action], -1))
        goal_repr = self.critic.goal_encoder(goal)
        next_logits = critic_logits(phi, self.critic.goal_encoder(batch["next_goal"]), cfg.energy)
        future_logits = critic_logits(phi, goal_repr, cfg.energy)
        with torch.no_grad():
            next_state = torch.cat([batch["next_observation"], goal], -1)
            next_action, _ = self.actor(next_state)
            target_phi = self.target_critic.sa_encoder(torch.cat([next_state, next_action], -1))
            target_logits = critic_logits(target_phi, self.target_critic.goal_encoder(goal), cfg.energy)
        loss = td_infonce_loss(next_logits, future_logits, target_logits, cfg.discount, batch["has_next"])
        loss = loss + cfg.logsumexp_penalty * torch.logsumexp(future_logits, dim=1).pow(2).mean()
        return future_logits, loss, goal_repr

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
