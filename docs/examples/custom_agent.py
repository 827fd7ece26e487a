"""Add an agent: random-shooting model-predictive control on a learned one-step model, in one small class.

Run it: `.venv/bin/python docs/examples/custom_agent.py` (tests/test_docs.py does, and checks that it learns).
The agent (after Nagabandi et al. 2018) learns how an action moves the achieved goal, Δg = f(s, a), by regression
on its own transitions, and acts by trying `candidates` random actions per copy and taking the one whose predicted
next achieved goal is nearest the desired goal. It follows crlab's `Agent` protocol (agents/base.py), is
registered in `AGENTS`, and is driven by the run engine's online source with a hook of our own, as
`scripts.train` drives every agent.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F

import envs  # noqa: F401  (registers crlab/Reach-v0)
from agents import AGENTS, make_agent
from agents.base import TensorObs
from agents.networks import mlp
from scripts.engine import Engine, EnvSource, Hook
from scripts.evaluate import evaluate


@dataclass
class ShootingConfig:
    """Options of the agent: what `agent.KEY=VALUE` sets (scripts/conf/agent/shooting.yaml would mirror these)."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr: float = 1e-3
    batch_size: int = 256
    buffer_size: int = 100_000  # transitions
    warmup_steps: int = 1_000  # uniform random actions before the model is used
    candidates: int = 64  # random actions tried per copy and step
    noise: float = 0.1  # Gaussian exploration noise on the chosen action while training


class ShootingAgent:
    """Random-shooting MPC for GoalEnv dict observations `{observation (obs_dim,), achieved_goal (goal_dim,),
    desired_goal (goal_dim,)}` and Box actions in [-1, 1]. The model maps (B, obs_dim + A) to Δg (B, goal_dim)."""

    loop = "online"  # driven by env steps (scripts/engine.py EnvSource)
    dataset_format = None  # learns from no dataset file

    def __init__(self, observation_space: gymnasium.spaces.Dict, action_space: gymnasium.spaces.Box,
                 cfg: ShootingConfig, num_envs: int, max_episode_steps: int, device: torch.device) -> None:
        self.cfg, self.device, self.num_envs = cfg, torch.device(device), num_envs
        obs_dim = observation_space["observation"].shape[0]
        goal_dim = observation_space["achieved_goal"].shape[0]
        self.action_dim = action_space.shape[0]
        self.model = mlp(obs_dim + self.action_dim, cfg.hidden, goal_dim).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        c = cfg.buffer_size  # a circular transition buffer on the device
        self.inputs = torch.zeros(c, obs_dim + self.action_dim, device=self.device)
        self.deltas = torch.zeros(c, goal_dim, device=self.device)
        self.size, self.next_row, self.env_steps = 0, 0, 0

    def predict(self, observation: torch.Tensor, achieved: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Next achieved goals (B, goal_dim) for observations (B, obs_dim), achieved goals and actions (B, A)."""
        return achieved + self.model(torch.cat([observation, action], -1))

    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """Actions (N, A): the best of `candidates` random actions under the model; random during warm-up."""
        n, k = obs["observation"].shape[0], self.cfg.candidates
        if not deterministic and self.env_steps < self.cfg.warmup_steps:
            return torch.rand(n, self.action_dim, device=self.device) * 2 - 1
        candidates = torch.rand(n, k, self.action_dim, device=self.device) * 2 - 1
        candidates[:, 0] = 0.0  # standing still is always a candidate
        repeat = lambda x: x[:, None].expand(n, k, x.shape[-1]).reshape(n * k, -1)  # noqa: E731
        predicted = self.predict(repeat(obs["observation"]), repeat(obs["achieved_goal"]),
                                 candidates.reshape(n * k, -1)).reshape(n, k, -1)
        distance = torch.linalg.vector_norm(predicted - obs["desired_goal"][:, None], dim=-1)  # (N, K)
        action = candidates[torch.arange(n, device=self.device), distance.argmin(1)]
        if not deterministic:
            action = (action + self.cfg.noise * torch.randn_like(action)).clamp(-1, 1)
        return action

    def observe(self, obs: TensorObs, action: torch.Tensor, reward: torch.Tensor, next_obs: TensorObs,
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Store one vector step (N transitions); next_obs holds the true last observation of ended episodes."""
        rows = (self.next_row + torch.arange(self.num_envs, device=self.device)) % self.cfg.buffer_size
        self.inputs[rows] = torch.cat([obs["observation"], action], -1)
        self.deltas[rows] = next_obs["achieved_goal"] - obs["achieved_goal"]
        self.next_row = (self.next_row + self.num_envs) % self.cfg.buffer_size
        self.size = min(self.size + self.num_envs, self.cfg.buffer_size)
        self.env_steps += self.num_envs

    def update(self) -> dict[str, torch.Tensor]:
        """One regression step of the model on a random batch of stored transitions."""
        if self.size < self.cfg.batch_size:
            return {}
        rows = torch.randint(0, self.size, (self.cfg.batch_size,), device=self.device)
        loss = F.mse_loss(self.model(self.inputs[rows]), self.deltas[rows])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"model_loss": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only, so `torch.load(weights_only=True)` restores it."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.env_steps = int(state["env_steps"])


# In crlab itself: one entry in agents/__init__.py's AGENTS and a scripts/conf/agent/shooting.yaml with the same
# keys, after which `python -m scripts.train agent=shooting env=reach` runs it.
AGENTS["shooting"] = (ShootingAgent, ShootingConfig)


class EvaluateEvery(Hook):
    """A run-engine hook: evaluate every `every` env steps, keep the rows."""

    def __init__(self, agent: Any, env: gymnasium.vector.VectorEnv, every: int) -> None:
        self.agent, self.env, self.every, self.rows = agent, env, every, []

    def at_mark(self, engine: Engine, stop: bool) -> None:
        if stop or engine.steps >= len(self.rows) * self.every:
            self.rows.append((engine.steps, evaluate(self.agent, self.env, seed=10_000)["eval_success_rate"]))
            print(f"  env steps {engine.steps:>6}: success {self.rows[-1][1]:.2f}")


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=16)
    eval_env = gymnasium.make_vec("crlab/Reach-v0", num_envs=50)
    agent = make_agent("shooting", {"candidates": 64}, env.single_observation_space, env.single_action_space,
                       env.num_envs, max_episode_steps=50, device=torch.device("cpu"))
    hook = EvaluateEvery(agent, eval_env, every=2_000)
    engine = Engine([hook], total_steps=4_000)
    print("random-shooting MPC on crlab/Reach-v0 (sparse reward: success = fingertip within 5 cm at the last step)")
    EnvSource(agent, env, seed=0).drive(engine)
    first, last = hook.rows[0][1], hook.rows[-1][1]
    print(f"success: untrained {first:.2f}, after {hook.rows[-1][0]} env steps {last:.2f}")
    assert last >= first + 0.3, "the agent should clearly beat its untrained policy on Reach"


if __name__ == "__main__":
    sys.exit(main())
