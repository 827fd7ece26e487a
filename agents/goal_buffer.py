"""Episode replay buffer with hindsight goals drawn from each trajectory's own future, and the goal sampler.

Storage is episode-major on the training device: field tensors shaped (capacity_episodes, max_len, dim).
Each copy of a vector env writes into its own open episode slot; a slot becomes sampleable when its episode
ends. Sampling never leaves the device.

What a batch's goals are drawn from is the sampler's, declared by a `GoalMix` (as OGBench's dataset class draws
`value_p_*` / `actor_p_*` goal mixtures): the critic's goal is always a future achieved goal of the same
trajectory; an actor goal is that goal, another row's (`actor_random_goals`), or that goal in the commanded form
of the env's goal space (`actor_command_goals`, envs/goal_space.py); and a share of the rows may come from
episodes drawn by how far their object travelled (`goal_motion_share`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.goal_dataset import episode_bounds
from envs.goal_space import GoalSpace


@dataclass(frozen=True)
class GoalMix:
    """The goal mixture of a batch: shares in [0, 1] (0: plain hindsight goals, the same for critic and actor)."""

    actor_random_goals: float = 0.0  # actor goals drawn from other rows of the batch (goals this trajectory missed)
    actor_command_goals: float = 0.0  # actor goals put in the goal space's commanded form (how the actor is asked)
    goal_motion_share: float = 0.0  # rows from episodes drawn in proportion to how far their object moved


def future_goal_offsets(length_left: torch.Tensor, discount: float) -> torch.Tensor:
    """Offsets k in [1, length_left] with P(k) proportional to discount^(k-1) (truncated geometric).

    length_left (B,) int, >= 1. Sampled by inverting the truncated CDF F(k) = (1 - d^k) / (1 - d^L).
    """
    u = torch.rand(length_left.shape, device=length_left.device)
    if discount >= 1.0:
        return (u * length_left).floor().long().clamp_(0, None) + 1
    mass = 1.0 - discount ** length_left.double()
    k = torch.ceil(torch.log1p(-u.double() * mass) / np.log(discount))
    return torch.minimum(k.long().clamp_(min=1), length_left)


class GoalReplayBuffer:
    """Stores (observation, action, next_achieved_goal) per step; samples future-goal batches for CRL."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        goal_dim: int,
        num_envs: int,
        capacity: int,
        max_episode_steps: int,
        device: torch.device,
        goal_space: GoalSpace | None = None,
    ) -> None:
        self.max_len = max_episode_steps
        self.num_slots = max(capacity // max_episode_steps, 2 * num_envs)
        self.device = device
        shape = (self.num_slots, self.max_len)
        self.observation = torch.zeros(*shape, obs_dim, device=device)
        self.action = torch.zeros(*shape, action_dim, device=device)
        self.next_achieved_goal = torch.zeros(*shape, goal_dim, device=device)
        self.lengths = torch.zeros(self.num_slots, dtype=torch.long, device=device)
        # the env's goal space: the commanded form of actor goals, and the task part whose travel is `motion`
        self.goal_space = goal_space or GoalSpace("object", goal_dim)
        self.motion = torch.zeros(self.num_slots, device=device)  # how far each episode's object travelled
        self.num_envs = num_envs
        self.slot = np.arange(num_envs)  # the open episode slot of each env copy
        self.t = np.zeros(num_envs, dtype=np.int64)  # next write position within that slot
        # their device copies, advanced on the device and re-sent only when an episode ends (no host copy per step)
        self.slot_dev, self.t_dev = self._to_device()
        self.next_slot = num_envs
        self.num_episodes = 0

    def add(self, observation: torch.Tensor, action: torch.Tensor, next_achieved_goal: torch.Tensor, done: np.ndarray) -> None:
        """Append one step of every env copy: tensors (N, dim) on the device, done (N,) bool on the host."""
        if (self.t >= self.max_len).any():
            raise ValueError(f"an episode ran past max_episode_steps={self.max_len}; raise it in the buffer config")
        self.observation[self.slot_dev, self.t_dev] = observation
        self.action[self.slot_dev, self.t_dev] = action
        self.next_achieved_goal[self.slot_dev, self.t_dev] = next_achieved_goal
        self.t += 1
        self.t_dev += 1
        ended = np.flatnonzero(done)
        if len(ended) == 0:
            return
        closed = torch.as_tensor(self.slot[ended], device=self.device)
        length = torch.as_tensor(self.t[ended], device=self.device)
        self.lengths[closed] = length
        # path length of each closed episode's task goal (its object) over its `length` steps
        path = self.goal_space.task_part(self.next_achieved_goal[closed])
        moves = (path[:, 1:] - path[:, :-1]).norm(dim=-1)
        self.motion[closed] = (moves * (torch.arange(self.max_len - 1, device=self.device) < length[:, None] - 1)).sum(1)
        self.num_episodes += len(ended)
        opened = (self.next_slot + np.arange(len(ended))) % self.num_slots
        self.slot[ended], self.t[ended] = opened, 0
        self.lengths[torch.as_tensor(opened, device=self.device)] = 0  # the slots about to be overwritten: not sampled
        self.next_slot = int((self.next_slot + len(ended)) % self.num_slots)
        self.slot_dev, self.t_dev = self._to_device()

    def _to_device(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies (not views: on the CPU `as_tensor` would share the arrays) of the open slots and positions."""
        return torch.tensor(self.slot, device=self.device), torch.tensor(self.t, device=self.device)

    def add_episodes(self, observation: torch.Tensor, action: torch.Tensor, next_achieved_goal: torch.Tensor,
                     bounds: np.ndarray) -> None:
        """Store whole episodes of an offline dataset: step tensors (T, dim) and bounds (E, 2), the [start, end) rows
        of each; one slot per episode after the open ones (which stay empty and unsampled)."""
        lengths = bounds[:, 1] - bounds[:, 0]
        if lengths.max() > self.max_len:
            raise ValueError(f"a dataset episode has {lengths.max()} steps, more than max_episode_steps={self.max_len}")
        if len(bounds) > self.num_slots - self.num_envs:
            raise ValueError(f"{len(bounds)} episodes do not fit in {self.num_slots - self.num_envs} episode slots")
        for slot, (start, end) in enumerate(bounds, start=self.num_envs):
            length = end - start
            self.observation[slot, :length] = observation[start:end]
            self.action[slot, :length] = action[start:end]
            self.next_achieved_goal[slot, :length] = next_achieved_goal[start:end]
            self.lengths[slot] = length
            path = self.goal_space.task_part(next_achieved_goal[start:end])
            self.motion[slot] = (path[1:] - path[:-1]).norm(dim=-1).sum()
        self.num_episodes += len(bounds)
        self.next_slot = (self.num_envs + len(bounds)) % self.num_slots

    def __len__(self) -> int:
        """Number of finished episodes held (up to capacity)."""
        return min(self.num_episodes, self.num_slots - self.num_envs)

    def sample(self, batch_size: int, discount: float, mix: GoalMix | None = None) -> dict[str, torch.Tensor]:
        """`draw`, after checking that an episode has finished."""
        if self.num_episodes == 0:
            raise RuntimeError("GoalReplayBuffer.sample called before any episode finished")
        return self.draw(batch_size, discount, mix)

    def draw(self, batch_size: int, discount: float, mix: GoalMix | None = None) -> dict[str, torch.Tensor]:
        """A batch of observation (B, S), action (B, A), goal (B, G) = the achieved goal k >= 1 steps later
        (k ~ truncated Geometric(1 - discount)), actor_goal (B, G) (`goal` itself without a mixture), next_goal
        (B, G), next_observation (B, S) and has_next (B,) (0 where the step ended its episode, whose last next
        observation is not stored). Tensor ops only, no host synchronisation: an agent's compiled step can take
        the draw and the update as one graph (call it once an episode has finished).

        Steps are drawn uniformly, except that a `goal_motion_share` of the batch comes from episodes drawn in
        proportion to how far their object travelled (a trajectory-energy prioritisation in the spirit of Zhao &
        Tresp 2018): the few episodes in which the object moved at all are then not drowned out by the many in
        which every future goal is where the object started.
        """
        mix = mix or GoalMix()
        weights = self.lengths.float()
        if mix.goal_motion_share > 0.0:
            moved = self.motion * (self.lengths > 0)
            moved = moved / moved.sum().clamp_min(1e-12)  # all zero (nothing moved yet): the uniform draw
            uniform = weights / weights.sum()
            share = mix.goal_motion_share
            weights = torch.where(moved.sum() > 0, (1 - share) * uniform + share * moved, uniform)
        episode = torch.multinomial(weights, batch_size, replacement=True)
        length = self.lengths[episode]
        t = (torch.rand(batch_size, device=self.device) * length).long()
        k = future_goal_offsets(length - t, discount)
        goal = self.next_achieved_goal[episode, t + k - 1]
        # the achieved goal at the observation itself: the previous step's next one (at t = 0 the next one)
        achieved_now = self.next_achieved_goal[episode, (t - 1).clamp(min=0)]
        return {
            "observation": self.observation[episode, t],
            "action": self.action[episode, t],
            "goal": goal,
            "actor_goal": self.actor_goals(goal, achieved_now, mix),
            # one step on (TD InfoNCE): the next state's achieved goal always, its observation where stored
            "next_goal": self.next_achieved_goal[episode, t],
            "achieved_now": achieved_now,
            "next_observation": self.observation[episode, (t + 1).clamp(max=length - 1)],
            "has_next": (t + 1 < length).float(),
            "t": t,
            "offset": k,
            "length": length,
        }

    def actor_goals(self, goal: torch.Tensor, achieved_now: torch.Tensor, mix: GoalMix) -> torch.Tensor:
        """The actor's goals (B, G) from the batch's hindsight goals (B, G): an `actor_random_goals` share replaced
        by other rows' goals, then an `actor_command_goals` share put in the commanded form (the goal space's
        desired goal asking for the goal's task part from the row's state now). `goal` itself without a mixture."""
        actor_goal = goal
        if mix.actor_random_goals > 0:  # goals the trajectory did not reach: Contrastive RL's random_goals
            swap = torch.rand(len(goal), 1, device=goal.device) < mix.actor_random_goals
            actor_goal = torch.where(swap, goal[torch.randperm(len(goal), device=goal.device)], goal)
        if mix.actor_command_goals > 0:  # the form the actor is evaluated on (push_behind: the pusher behind)
            space = self.goal_space
            command = space.command(space.task_part(actor_goal), space.task_part(achieved_now))
            swap = torch.rand(len(goal), 1, device=goal.device) < mix.actor_command_goals
            actor_goal = torch.where(swap, command, actor_goal)
        return actor_goal


def goal_space_dims(agent: str, observation_space: Any, action_space: Any) -> dict[str, int]:
    """The widths {observations, actions, achieved_goals} of a GoalEnv's Dict observations and Box actions; a
    ValueError naming `agent` and what it got otherwise."""
    from gymnasium import spaces

    needed = {"observation", "achieved_goal", "desired_goal"}
    if not isinstance(observation_space, spaces.Dict) or not needed <= set(observation_space.spaces):
        raise ValueError(f"{agent} needs a goal env with Dict observations {sorted(needed)}, got {observation_space}")
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"{agent} needs a Box action space, got {action_space}")
    return {"observations": int(np.prod(observation_space["observation"].shape)), "actions": int(np.prod(action_space.shape)),
            "achieved_goals": int(np.prod(observation_space["achieved_goal"].shape))}


def buffer_from_dataset(data: dict[str, np.ndarray], dims: dict[str, int], max_episode_steps: int, device: torch.device,
                        goal_space: GoalSpace | None = None) -> GoalReplayBuffer:
    """A buffer holding a goal dataset's episodes (agents.goal_dataset layout) for offline agents. `dims` are the
    env's widths {observations, actions, achieved_goals} (a mismatch is a clear error: a dataset is recorded in one
    goal space). Episodes may be longer than the env's evaluation episodes (OGBench's data: 1001 steps, evaluation:
    200)."""
    wrong = {k: (data[k].shape[1], d) for k, d in dims.items() if data[k].shape[1] != d}
    if wrong:
        raise ValueError(f"the dataset's widths {wrong} (dataset, env) do not match this env's spaces (a dataset "
                         "keeps the goal space it was recorded in: env.kwargs.goal_space)")
    as_tensor = lambda key: torch.as_tensor(data[key], dtype=torch.float32, device=device)  # noqa: E731
    goals = as_tensor("next_achieved_goals")
    bounds = episode_bounds(data["terminals"])
    max_len = max(max_episode_steps or 0, int((bounds[:, 1] - bounds[:, 0]).max()))  # data episodes may be longer
    buffer = GoalReplayBuffer(dims["observations"], dims["actions"], goals.shape[-1], 1, (len(bounds) + 1) * max_len,
                              max_len, device, goal_space)
    buffer.add_episodes(as_tensor("observations"), as_tensor("actions"), goals, bounds)
    return buffer


class OfflineGoalAgent:
    """What the offline goal-conditioned agents (gcbc, gciql) share: goal-env spaces, a hindsight-goal buffer filled
    from a goal dataset, and a Gaussian `actor` pi(a | s, g) that acts for the desired goal."""

    loop = "offline"
    dataset_format = "goal"
    name = ""
    actor: torch.nn.Module

    def __init__(self, observation_space: Any, action_space: Any, max_episode_steps: int, device: torch.device) -> None:
        self.dims = goal_space_dims(self.name, observation_space, action_space)
        self.device, self.max_episode_steps = device, max_episode_steps
        self.buffer: GoalReplayBuffer | None = None
        self.num_updates = 0

    def set_dataset(self, data: dict[str, np.ndarray]) -> None:
        """The dataset's episodes (agents.goal_dataset layout) become the hindsight-goal buffer."""
        self.buffer = buffer_from_dataset(data, self.dims, self.max_episode_steps, self.device)

    def sample(self, batch_size: int, discount: float) -> dict[str, torch.Tensor]:
        """A hindsight-goal batch of the dataset (GoalReplayBuffer.sample)."""
        if self.buffer is None:
            raise RuntimeError(f"{self.name} has no dataset: set agent.dataset=FILE (python -m scripts.make_dataset)")
        return self.buffer.sample(batch_size, discount)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = False) -> torch.Tensor:
        """obs dict of (N, ...) tensors -> actions (N, A) for the desired goal."""
        action, _ = self.actor(torch.cat([obs["observation"], obs["desired_goal"]], -1), deterministic)
        return action
