"""Online preference learning during agent training, PEBBLE-style (Lee et al. 2021), kept small.

The reward model replaces the env's reward from the first step (through `rewards.wrapper.VectorRewardWrapper`,
with this object as its observer, so it sees every transition and the env's ground-truth reward). Every
`query_every` env steps, a feedback session:
  1. sample `candidates` pairs of `segment_length`-step segments from the last `window` env steps (each segment
     lies within one episode of one env copy),
  2. keep the `queries` pairs the ensemble disagrees on most (`selection="disagreement"`) or random ones,
  3. ask the teacher for labels: by default a scripted teacher (`SyntheticLabeler`) on each segment's
     ground-truth return; any callable `(segments_a, segments_b) -> labels (N,)` with a `needs` set works,
     e.g. the RL-VLM-F frame teacher of `rewards/vlm_preference.py`,
  4. refit the reward model on every label so far.
After a session the training script asks the agent to relabel its replay buffer with the new model, if the agent
keeps rewards (`agent.relabel_rewards(reward_fn)`; CRL ignores rewards and PPO is on-policy, so neither needs it).
Unsupervised pre-training and the label-budget schedules of PEBBLE are left out.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from rewards.preference import PreferenceRewardModel, select_pairs_by_disagreement

Teacher = Callable[[dict[str, Any], dict[str, Any]], torch.Tensor]
SELECTIONS = ("disagreement", "uniform")


def _map(fn: Callable[[Any], Any], x: Any) -> Any:
    return {k: fn(v) for k, v in x.items()} if isinstance(x, dict) else fn(x)


class SegmentWindow:
    """The last `capacity` vector steps of N env copies, in a ring: leaves shaped (capacity, N, ...).

    Stores obs, action, next_obs, reward (the env's) and, if asked, frames (kept on the host, uint8).
    """

    def __init__(self, capacity: int, keep_frames: bool = False) -> None:
        self.capacity = capacity
        self.keep_frames = keep_frames
        self.store: dict[str, Any] = {}
        self.step_in_episode: torch.Tensor | None = None  # (capacity, N) index of each step within its episode
        self.episode_step: np.ndarray | None = None  # (N,) running index for the step being written
        self.total = 0  # vector steps written so far

    def add(self, batch: dict[str, Any], reward: torch.Tensor, done: np.ndarray) -> None:
        """Append one vector step: batch leaves (N, ...) (obs, action, next_obs[, frames]), reward (N,), done (N,)."""
        step = {key: batch[key] for key in ("obs", "action", "next_obs")}
        step["reward"] = reward
        if self.keep_frames:
            step["frames"] = torch.as_tensor(batch["frames"]).cpu()
        if not self.store:
            ring = lambda x: x.new_zeros(self.capacity, *x.shape)  # noqa: E731  (capacity, N, ...) storage
            self.store = {key: _map(ring, value) for key, value in step.items()}
            num_envs = len(reward)
            self.step_in_episode = torch.zeros(self.capacity, num_envs, dtype=torch.long)
            self.episode_step = np.zeros(num_envs, dtype=np.int64)
        slot = self.total % self.capacity
        for key, value in step.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    self.store[key][k][slot] = v
            else:
                self.store[key][slot] = value
        self.step_in_episode[slot] = torch.as_tensor(self.episode_step)
        self.episode_step = np.where(done, 0, self.episode_step + 1)
        self.total += 1

    def sample_segments(self, num: int, length: int, generator: torch.Generator) -> dict[str, Any] | None:
        """`num` random segments, leaves (num, length, ...), each within one episode; None if there are none yet."""
        oldest = max(0, self.total - self.capacity)
        starts = self.total - length + 1 - oldest  # number of possible start positions per copy
        if starts <= 0:
            return None
        num_envs = self.step_in_episode.shape[1]
        chosen_t, chosen_i = [], []
        for _ in range(20):  # rejection sampling; most starts are valid once episodes are longer than segments
            t = oldest + torch.randint(starts, (4 * num,), generator=generator)
            i = torch.randint(num_envs, (4 * num,), generator=generator)
            first = self.step_in_episode[t % self.capacity, i]
            last = self.step_in_episode[(t + length - 1) % self.capacity, i]
            valid = last - first == length - 1
            chosen_t.append(t[valid])
            chosen_i.append(i[valid])
            if sum(len(c) for c in chosen_t) >= num:
                break
        t, i = torch.cat(chosen_t)[:num], torch.cat(chosen_i)[:num]
        if len(t) == 0:
            return None
        rows = (t[:, None] + torch.arange(length)) % self.capacity  # (n, length)
        cols = i[:, None].expand_as(rows)

        def take(x: torch.Tensor) -> torch.Tensor:
            return x[rows.to(x.device), cols.to(x.device)]

        return {key: _map(take, value) for key, value in self.store.items()}


class OnlinePreferenceLearning:
    """Collects transitions (as a `VectorRewardWrapper` observer) and, when `due`, runs a feedback session."""

    def __init__(
        self,
        model: PreferenceRewardModel,
        teacher: Teacher,
        query_every: int,
        first_query: int | None = None,
        queries: int = 100,
        max_labels: int | None = None,
        candidates: int = 1000,
        selection: str = "disagreement",
        segment_length: int = 25,
        window: int = 50_000,
        num_envs: int = 1,
        epochs: int = 20,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"selection={selection!r} is not one of {SELECTIONS}")
        if query_every <= 0:
            raise ValueError(f"query_every={query_every} must be positive for online preference learning")
        self.model, self.teacher = model, teacher
        self.needs = frozenset(getattr(teacher, "needs", frozenset()))
        self.query_every, self.queries, self.max_labels = query_every, queries, max_labels
        self.candidates, self.selection, self.segment_length = max(candidates, queries), selection, segment_length
        self.epochs, self.batch_size = epochs, batch_size
        self.window = SegmentWindow(max(1, window // num_envs), keep_frames="frames" in self.needs)
        self.next_query = query_every if first_query is None else first_query
        self.generator = torch.Generator().manual_seed(seed)
        self.labelled: tuple[dict[str, Any], dict[str, Any], torch.Tensor] | None = None

    @property
    def num_labels(self) -> int:
        """Labels collected so far, over all feedback sessions."""
        return 0 if self.labelled is None else len(self.labelled[2])

    def record(self, batch: dict[str, Any], gt_reward: np.ndarray, done: np.ndarray) -> None:
        """Observer hook: one vector step of transitions (tensors on the model's device) and the env's reward."""
        self.window.add(batch, torch.as_tensor(gt_reward, dtype=torch.float32, device=self.model.device), done)

    def due(self, env_steps: int) -> bool:
        """Whether a feedback session is due at `env_steps` (and the label budget is not spent)."""
        budget_left = self.max_labels is None or self.num_labels < self.max_labels
        return env_steps >= self.next_query and budget_left

    def update(self, env_steps: int) -> dict[str, float]:
        """One feedback session: sample, select, label, refit. Returns metrics for the log."""
        self.next_query = env_steps + self.query_every
        queries = self.queries if self.max_labels is None else min(self.queries, self.max_labels - self.num_labels)
        segments_a = self.window.sample_segments(self.candidates, self.segment_length, self.generator)
        segments_b = self.window.sample_segments(self.candidates, self.segment_length, self.generator)
        if segments_a is None or segments_b is None or queries <= 0:
            return {}
        n = min(len(segments_a["reward"]), len(segments_b["reward"]))
        segments_a, segments_b = _rows(segments_a, torch.arange(n)), _rows(segments_b, torch.arange(n))
        if self.selection == "disagreement":
            chosen = select_pairs_by_disagreement(self.model, _model_view(segments_a), _model_view(segments_b), queries)
        else:
            chosen = torch.randperm(n, generator=self.generator)[:queries]
        segments_a, segments_b = _rows(segments_a, chosen.cpu()), _rows(segments_b, chosen.cpu())
        labels = torch.as_tensor(self.teacher(segments_a, segments_b), dtype=torch.float32)
        new = (_model_view(segments_a), _model_view(segments_b), labels)
        self.labelled = new if self.labelled is None else _concat(self.labelled, new)
        fit = self.model.fit(*self.labelled, epochs=self.epochs, batch_size=self.batch_size)
        return {"reward_model_loss": fit["loss"], "reward_model_accuracy": fit["accuracy"], "labels": self.num_labels}


def _model_view(segments: dict[str, Any]) -> dict[str, Any]:
    """The keys a preference model reads (no frames: they stay on the host)."""
    return {key: segments[key] for key in ("obs", "action", "next_obs")}


def _rows(segments: dict[str, Any], idx: Any) -> dict[str, Any]:
    def take(x: torch.Tensor) -> torch.Tensor:
        return x[idx.to(x.device) if isinstance(idx, torch.Tensor) else idx]

    return {key: _map(take, value) for key, value in segments.items()}


def _concat(old: tuple, new: tuple) -> tuple:
    def cat(a: Any, b: Any) -> Any:
        if isinstance(a, dict):
            return {k: torch.cat([a[k], b[k]]) for k in a}
        return torch.cat([a, b])

    return tuple({k: cat(a[k], b[k]) for k in a} if isinstance(a, dict) else cat(a, b) for a, b in zip(old, new))
