"""Proximal Policy Optimization (Schulman et al. 2017), with the semantics of CleanRL's ppo_continuous_action.

On-policy: the agent fills a rollout of `num_steps` vector steps, computes GAE(lambda) advantages (Schulman et al.
2016), then runs `update_epochs` passes of minibatch steps on the clipped surrogate objective, a (clipped) value
loss and an entropy bonus, with per-minibatch advantage normalisation and grad-norm clipping.

Observations pass through a non-learned front end (agents/policy_inputs.py: vector parts standardised by running
statistics and clipped, pixel frame stacks, sentence embeddings of text games' prompt and options) before the
networks (agents/ppo_policy.py). The rollout stores the raw inputs; the statistics stay fixed while a rollout is
collected and are updated once per rollout, so the update normalises the rollout exactly as the acting policy did
and its first minibatch sees the same log-probabilities (ratio 1). For vector inputs the minibatch step (gradient,
norm clip, Adam) is written out (agents/ppo_fused.py) rather than left to autograd and torch.optim: the same numbers,
1.50x the env-steps/s on a 2-core CPU; `compile=True` runs it and the acting pass through torch.compile (1.34x
again). Both ratios are from docs/benchmarks/records/throughput/ppo_vs_sb3.json.

Bootstrapping: a terminated step has no future; a truncated (time-limit) step bootstraps from V of the true final
observation, which the training loop passes as `next_obs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.base import TensorObs
from agents.policy_inputs import PolicyInputs
from agents.ppo_fused import FusedPPOStep
from agents.ppo_policy import ActorCritic


@dataclass
class PPOConfig:
    """Hyper-parameters of PPO; every field is a key of `scripts/conf/agent/ppo.yaml`.

    Defaults are tuned for crlab/Reach-v0 (dense reward, 32 copies, 50-step episodes); CleanRL's MuJoCo defaults
    differ in discount=0.99, lr=3e-4 and num_minibatches=32 (with one env copy).
    """

    num_steps: int = 64  # vector steps per rollout; the batch is num_steps * num_envs transitions
    lr: float = 1e-3
    anneal_lr: bool = True  # decay the learning rate linearly to 0 over total_env_steps
    total_env_steps: int = 1_000_000  # horizon of the LR annealing (the yaml ties it to the run's budget)
    discount: float = 0.95
    gae_lambda: float = 0.95
    num_minibatches: int = 8
    update_epochs: int = 10
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    norm_obs: bool = True
    obs_clip: float = 10.0  # normalised observations are clipped to [-obs_clip, obs_clip]
    init_log_std: float = 0.0  # Box actions: initial log standard deviation of the Gaussian policy
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    feature_dim: int = 50  # pixel observations: CNN feature size (CURL's encoder, shared by actor and critic)
    num_conv_layers: int = 4
    num_filters: int = 32
    text_encoder: str | None = None  # text games: `minilm` (or a local sentence-transformers folder) scores options
    fused_gradients: bool = True  # vector inputs: closed-form step (same numbers, faster); False: autograd + torch.optim
    compile: bool = False  # fused path: torch.compile the minibatch step and the acting forward pass

    def __post_init__(self) -> None:
        for name in ("num_steps", "num_minibatches", "update_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")


# --- losses -------------------------------------------------------------------------------------------------
def generalized_advantage_estimate(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) over a rollout; every input is (T, N), next_values[t] = V(true next observation of step t).

    delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t);  A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}
    with done = terminated | truncated, since row t+1 then starts a new episode. Returns advantages and
    returns A + V, both (T, N).
    """
    deltas = rewards + gamma * (~terminated).float() * next_values - values
    carry = (~(terminated | truncated)).float() * gamma * gae_lambda
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        last = deltas[t] + carry[t] * last
        advantages[t] = last
    return advantages, advantages + values


def clipped_surrogate_loss(log_ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """PPO-clip policy loss -E[min(r A, clip(r, 1-eps, 1+eps) A)], r = exp(log_ratio); inputs (B,), output ()."""
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    return torch.max(unclipped, clipped).mean()


def value_loss(
    new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_coef: float | None
) -> torch.Tensor:
    """0.5 E[(V - R)^2]; with `clip_coef`, the pessimistic max against V_old + clip(V - V_old, +-eps). (B,) -> ()."""
    unclipped = (new_values - returns).pow(2)
    if clip_coef is None:
        return 0.5 * unclipped.mean()
    clipped = (old_values + (new_values - old_values).clamp(-clip_coef, clip_coef) - returns).pow(2)
    return 0.5 * torch.max(unclipped, clipped).mean()


# --- agent --------------------------------------------------------------------------------------------------
class PPOAgent:
    """PPO for Box, Dict, pixel or (with `text_encoder`) text-game observations and 1-D Box or Discrete actions.

    Box actions are raw Gaussian samples, as in CleanRL: the env (or a ClipAction wrapper) clips them to bounds.
    """

    loop = "online"  # the run engine steps the env for it (scripts/engine.py EnvSource)
    dataset_format = None  # online only

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        cfg: PPOConfig,
        num_envs: int,
        max_episode_steps: int,
        device: torch.device,
    ) -> None:
        if isinstance(action_space, spaces.Box) and len(action_space.shape) != 1:
            raise ValueError(f"ppo needs 1-D Box actions, got shape {action_space.shape}")
        if isinstance(action_space, spaces.Discrete) and int(action_space.start) != 0:
            raise ValueError(f"ppo needs Discrete actions starting at 0, got {action_space}")
        if not isinstance(action_space, (spaces.Box, spaces.Discrete)):
            raise ValueError(f"ppo needs Box or Discrete actions, got {action_space}")
        self.cfg, self.device, self.num_envs = cfg, device, num_envs
        self.obs_input = PolicyInputs(observation_space, action_space, cfg.norm_obs, cfg.obs_clip, cfg.text_encoder).to(device)
        self.policy = ActorCritic(self.obs_input.shapes, action_space, cfg.hidden, cfg.init_log_std, cfg.feature_dim,
                                  cfg.num_conv_layers, cfg.num_filters).to(device)
        # Vector-input policies take PPO's step in closed form (agents/ppo_fused.py).
        self.fused = cfg.fused_gradients and set(self.obs_input.shapes) == {"vector"}
        if cfg.compile and not self.fused:
            raise ValueError(f"compile=true needs the closed-form step: vector observations and fused_gradients=true; "
                             f"this policy reads {sorted(self.obs_input.shapes)} with fused_gradients={cfg.fused_gradients}")
        self.fused_step: FusedPPOStep | None = None
        self.optimizer: torch.optim.Adam | None = None
        if self.fused:
            self.fused_step = FusedPPOStep(
                self.policy, clip_coef=cfg.clip_coef, value_clip_coef=cfg.clip_coef if cfg.clip_vloss else None,
                vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef, max_grad_norm=cfg.max_grad_norm, eps=1e-5,
                compile=cfg.compile)
        else:  # one fused kernel for the whole step: the default per-tensor loop costs more than the tiny networks
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
        acting = lambda obs: self.policy.policy_out(self.obs_input(obs))  # noqa: E731
        self.actor_output = torch.compile(acting) if cfg.compile else acting

        self.batch_size = cfg.num_steps * num_envs
        if self.batch_size < cfg.num_minibatches:
            raise ValueError(f"num_steps * num_envs = {self.batch_size} < num_minibatches = {cfg.num_minibatches}")
        self.minibatch_size = self.batch_size // cfg.num_minibatches
        self.num_iterations = max(1, cfg.total_env_steps // self.batch_size)  # for LR annealing

        # Rollout storage, (T, N, ...) on the training device; `observe` writes row `self.step`. Inputs are kept
        # raw; the observation statistics stay fixed while a rollout is collected and are updated by `update`.
        shape = (cfg.num_steps, num_envs)
        zeros = lambda: {name: torch.zeros(*shape, *s, dtype=dtype, device=device)  # noqa: E731
                         for name, (s, dtype) in self.obs_input.shapes.items()}
        self.inputs, self.next_inputs = zeros(), zeros()  # next: the true next observation (bootstraps truncations)
        if self.policy.continuous:
            self.actions = torch.zeros(*shape, action_space.shape[0], device=device)
        else:
            self.actions = torch.zeros(shape, dtype=torch.long, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.step = 0  # next rollout row to write
        self.iteration = 0  # PPO updates done so far

    # --- acting ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """obs with leaves (N, ...) -> actions (N, A) float or (N,) long; the mean / argmax when deterministic."""
        return self.policy.sample(self.actor_output(obs), deterministic)

    @torch.no_grad()
    def observe(self, obs: TensorObs, action: torch.Tensor, reward: torch.Tensor, next_obs: TensorObs,
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Write rollout row t (raw inputs of obs and of the true next obs, action, reward, flags). Log-probs and
        values wait for `update`: one batched pass gives what the unchanged policy computed while acting."""
        if self.step >= self.cfg.num_steps:
            raise RuntimeError("rollout is full: call update() after every observe()")
        t = self.step
        for name, x in self.obs_input.raw(obs).items():
            self.inputs[name][t] = x
        for name, x in self.obs_input.raw(next_obs).items():
            self.next_inputs[name][t] = x
        self.actions[t] = action
        self.rewards[t] = reward
        self.terminated[t] = torch.as_tensor(terminated, device=self.device)
        self.truncated[t] = torch.as_tensor(truncated, device=self.device)
        self.step += 1

    @torch.no_grad()
    def behaviour_pass(self, inputs: dict[str, torch.Tensor], next_inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """log pi_old(a|s), V_old(s) and V_old(s'), each (T, N), over the normalised rollout. The policy and the
        statistics have not changed since it acted, so this equals evaluating each step as it happened. Pixel
        inputs go in chunks of minibatch size, which bounds their memory; the rest in one pass."""
        rows = max(1, self.minibatch_size // self.num_envs) if "pixels" in self.obs_input.shapes else self.cfg.num_steps
        log_probs, values, next_values = [], [], []
        for start in range(0, self.cfg.num_steps, rows):
            chunk = lambda x: {name: v[start:start + rows].flatten(0, 1) for name, v in x.items()}  # noqa: E731
            out, value = self.policy(chunk(inputs))
            log_probs.append(self.policy.log_prob_entropy(out, self.actions[start:start + rows].flatten(0, 1))[0])
            values.append(value)
            next_values.append(self.policy.value(chunk(next_inputs)))
        shape = (self.cfg.num_steps, self.num_envs)
        return tuple(torch.cat(x).view(shape) for x in (log_probs, values, next_values))

    # --- learning ----------------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        """Once the rollout is full: GAE, then `update_epochs` x `num_minibatches` gradient steps; else {}."""
        if self.step < self.cfg.num_steps:
            return {}
        self.step = 0
        cfg = self.cfg
        lr = cfg.lr * max(0.0, 1.0 - self.iteration / self.num_iterations) if cfg.anneal_lr else cfg.lr
        if self.fused_step is not None:
            self.fused_step.set_lr(lr)
        else:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.iteration += 1

        inputs, next_inputs = self.obs_input.normalize(self.inputs), self.obs_input.normalize(self.next_inputs)
        old_log_probs, old_values, next_values = self.behaviour_pass(inputs, next_inputs)
        self.obs_input.update_stats(self.inputs)  # for the next rollout
        with torch.no_grad():
            advantages, returns = generalized_advantage_estimate(
                self.rewards, old_values, next_values, self.terminated, self.truncated, cfg.discount, cfg.gae_lambda)
        b_inputs = {name: x.flatten(0, 1) for name, x in inputs.items()}  # (B, ...), B = T * N
        b_actions = self.actions.flatten(0, 1)
        b_log_probs, b_values = old_log_probs.flatten(), old_values.flatten()
        b_advantages, b_returns = advantages.flatten(), returns.flatten()

        # Each epoch gathers its shuffled minibatches in one go, (M, mb, ...); a remainder of B % mb is dropped.
        num_mb, mb_size = cfg.num_minibatches, self.minibatch_size
        log_ratios, pg_losses, v_losses, entropies = [], [], [], []
        for _ in range(cfg.update_epochs):
            order = torch.randperm(self.batch_size, device=self.device)[:num_mb * mb_size].view(num_mb, mb_size)
            e_inputs = {name: x[order] for name, x in b_inputs.items()}
            e_actions, e_log_probs = b_actions[order], b_log_probs[order]
            e_values, e_returns, e_advantages = b_values[order], b_returns[order], b_advantages[order]
            if cfg.norm_adv:  # per minibatch, as CleanRL
                e_advantages = (e_advantages - e_advantages.mean(1, keepdim=True)) / (
                    e_advantages.std(1, keepdim=True) + 1e-8)
            for i in range(num_mb):
                mb = ({name: x[i] for name, x in e_inputs.items()}, e_actions[i], e_log_probs[i], e_values[i],
                      e_returns[i], e_advantages[i])
                log_ratio, pg_loss, v_loss, entropy = (self.fused_gradient_step if self.fused else self.gradient_step)(*mb)
                log_ratios.append(log_ratio)
                pg_losses.append(pg_loss)
                v_losses.append(v_loss)
                entropies.append(entropy)

        with torch.no_grad():  # Schulman's low-variance KL estimator and the share of clipped ratios
            log_ratio = torch.stack(log_ratios)  # (epochs * M, mb)
            ratio = log_ratio.exp()
            metrics = {
                "policy_loss": torch.stack(pg_losses).mean(),
                "value_loss": torch.stack(v_losses).mean(),
                "entropy": torch.stack(entropies).mean(),
                "approx_kl": ((ratio - 1) - log_ratio).mean(),
                "clip_frac": ((ratio - 1).abs() > cfg.clip_coef).float().mean(),
            }
        metrics["explained_variance"] = 1 - (b_returns - b_values).var() / (b_returns.var() + 1e-8)
        metrics["learning_rate"] = torch.tensor(lr, device=self.device)
        metrics["rollout_reward"] = self.rewards.mean()
        if self.policy.continuous:
            metrics["action_std"] = self.policy.actor_log_std.detach().exp().mean()
        return metrics

    def gradient_step(self, inputs: dict[str, torch.Tensor], actions: torch.Tensor, old_log_probs: torch.Tensor,
                      old_values: torch.Tensor, returns: torch.Tensor, advantages: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One Adam step on a minibatch (B, ...) through autograd; returns detached (log_ratio, pg, v, entropy)."""
        cfg = self.cfg
        out, new_values = self.policy(inputs)
        log_prob, entropy = self.policy.log_prob_entropy(out, actions)
        log_ratio = log_prob - old_log_probs
        pg_loss = clipped_surrogate_loss(log_ratio, advantages, cfg.clip_coef)
        v_loss = value_loss(new_values, old_values, returns, cfg.clip_coef if cfg.clip_vloss else None)
        loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm, foreach=True)
        self.optimizer.step()
        return log_ratio.detach(), pg_loss.detach(), v_loss.detach(), entropy.detach()

    def fused_gradient_step(self, inputs: dict[str, torch.Tensor], actions: torch.Tensor, old_log_probs: torch.Tensor,
                            old_values: torch.Tensor, returns: torch.Tensor, advantages: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`gradient_step` for vector inputs: closed-form gradient, clip and Adam (agents/ppo_fused.py)."""
        return self.fused_step(inputs["vector"], actions, old_log_probs, old_values, returns, advantages)

    # --- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizer, observation statistics and the update count; a partial rollout is not saved."""
        return {
            "policy": self.policy.state_dict(),
            "obs_input": self.obs_input.state_dict(),
            "optimizer": (self.fused_step or self.optimizer).state_dict(),
            "iteration": self.iteration,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_fused = "exp_avg" in state["optimizer"]  # the closed-form step's flat Adam state, else torch.optim's
        if saved_fused != self.fused:
            kind = lambda fused: "the closed-form step" if fused else "autograd and torch.optim.Adam"  # noqa: E731
            raise ValueError(f"this checkpoint was trained with {kind(saved_fused)}, this agent uses {kind(self.fused)}: "
                             f"resume with fused_gradients={str(saved_fused).lower()} (and the same observations)")
        self.policy.load_state_dict(state["policy"])
        self.obs_input.load_state_dict(state["obs_input"])
        (self.fused_step or self.optimizer).load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.step = 0  # the env is reset on resume, so collection starts a fresh rollout
