"""Env wrappers that swap the env's reward for a reward module's and keep the env's own in info["gt_reward"].

Each step builds one transition batch: obs, action, next_obs, terminated, and whatever the module `needs` of
frames (`env.render()`, so make the env with render_mode="rgb_array"), text (`env.unwrapped.describe()`) and
the s-side prev_frames / prev_text (remembered from the previous step or the reset). An optional `observer`
(e.g. `rewards.online_preference.OnlinePreferenceLearning`) is shown every batch with the ground-truth reward.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from envs.batched import true_next_obs
from rewards.base import RewardModule, batch_to_tensors

OBS_KEYS = frozenset({"obs", "action", "next_obs"})
PER_STATE_KEYS = frozenset({"frames", "text", "prev_frames", "prev_text"})


def _check_needs(needs: frozenset[str], render_mode: str | None) -> frozenset[str]:
    needs = frozenset(needs) - OBS_KEYS - {"terminated"}
    unknown = needs - PER_STATE_KEYS
    if unknown:
        raise ValueError(f"reward module needs {sorted(unknown)}; the wrappers provide {sorted(PER_STATE_KEYS)}")
    if needs & {"frames", "prev_frames"} and render_mode != "rgb_array":
        raise ValueError(f"the reward module needs frames: make the env with render_mode='rgb_array' ({render_mode!r})")
    return needs


def _add_batch_axis(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


class RewardWrapper(gymnasium.Wrapper):
    """Single env: reward = reward_module(transition); info["gt_reward"] = the env's reward."""

    def __init__(self, env: gymnasium.Env, reward_module: RewardModule) -> None:
        super().__init__(env)
        self.reward_module = reward_module
        self.needs = _check_needs(reward_module.needs, env.render_mode)
        self._obs: Any = None
        self._state: dict[str, Any] = {}

    def _observe_state(self) -> dict[str, Any]:
        state = {}
        if self.needs & {"frames", "prev_frames"}:
            state["frames"] = np.asarray(self.env.render())[None]
        if self.needs & {"text", "prev_text"}:
            state["text"] = [self.env.unwrapped.describe()]
        return state

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        """Reset the env, remembering the first observation (and frame / text when the module needs them)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        self._state = self._observe_state()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Step the env; the reward is the module's for this transition, the env's own is in info["gt_reward"]."""
        obs, gt_reward, terminated, truncated, info = self.env.step(action)
        state = self._observe_state()
        batch = {
            "obs": _add_batch_axis(self._obs),
            "action": np.asarray(action)[None],
            "next_obs": _add_batch_axis(obs),
            "terminated": np.array([terminated]),
            **{key: state[key] for key in self.needs & {"frames", "text"}},
            **{f"prev_{key}": self._state[key] for key in state if f"prev_{key}" in self.needs},
        }
        with torch.no_grad():
            reward = float(self.reward_module(batch_to_tensors(batch, self.reward_module.device))[0])
        self._obs, self._state = obs, state
        return obs, reward, terminated, truncated, {**info, "gt_reward": gt_reward}


class TransitionObserver(Protocol):
    """Sees every transition batch (tensors on the module's device) with the env's reward (N,) and done (N,)."""

    needs: frozenset[str]

    def record(self, batch: dict[str, Any], gt_reward: np.ndarray, done: np.ndarray) -> None:
        """See one transition batch with the env's rewards (N,) and episode ends (N,)."""


class VectorRewardWrapper(VectorWrapper):
    """Vector env (same-step autoreset): rewards (N,) from reward_module; info["gt_reward"] = the env's (N,).

    For copies whose episode ended, next_obs is the true last observation from info["final_obs"], and frames /
    text are the ended state's (info["final_frames"] / ["final_text"], which our `BatchedVectorEnv`s add when
    asked). Other same-step vector envs give render/describe after the step, i.e. the next episode's start.
    """

    def __init__(self, env: VectorEnv, reward_module: RewardModule, observer: TransitionObserver | None = None) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode == AutoresetMode.NEXT_STEP:
            raise ValueError("next-step autoreset makes a bogus transition after each episode; use SAME_STEP")
        self.reward_module = reward_module
        self.observer = observer
        needs = reward_module.needs | (observer.needs if observer is not None else frozenset())
        self.needs = _check_needs(needs, env.render_mode)
        wanted = sorted(self.needs & {"frames", "text"})
        request = getattr(env.unwrapped, "request_final_views", None)
        if wanted and request is not None:
            request(*wanted)
        self._obs: Any = None
        self._state: dict[str, Any] = {}

    def _observe_state(self) -> dict[str, Any]:
        state = {}
        if self.needs & {"frames", "prev_frames"}:
            state["frames"] = np.stack(self.env.render())
        if self.needs & {"text", "prev_text"}:
            state["text"] = list(self.env.unwrapped.describe())
        return state

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        """Reset every copy, remembering the observations (and frames / texts when the module needs them)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        self._state = self._observe_state()
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every copy; rewards (N,) are the module's for these transitions (the true last observation for
        ended copies), the env's own (N,) are in info["gt_reward"], and the observer sees the batch."""
        obs, gt_reward, terminated, truncated, info = self.env.step(actions)
        state = self._observe_state()  # for ended copies: the next episode's start, i.e. the next step's s
        batch = {
            "obs": self._obs,
            "action": np.asarray(actions),
            "next_obs": true_next_obs(obs, info),
            "terminated": np.asarray(terminated),
            **{key: _final_view(state[key], info, key) for key in self.needs & {"frames", "text"}},
            **{f"prev_{key}": self._state[key] for key in state if f"prev_{key}" in self.needs},
        }
        batch = batch_to_tensors(batch, self.reward_module.device)
        with torch.no_grad():
            reward = self.reward_module(batch)
        if self.observer is not None:
            self.observer.record(batch, np.asarray(gt_reward), np.asarray(terminated) | np.asarray(truncated))
        self._obs, self._state = obs, state
        return obs, reward.cpu().numpy().astype(np.float64), terminated, truncated, {**info, "gt_reward": gt_reward}


def _final_view(after_step: Any, info: dict[str, Any], key: str) -> Any:
    """Frames (N, H, W, 3) or text (N,) of s' after a vector step: the ended state's where an episode ended."""
    final = info.get(f"final_{key}")
    if final is None or "_final_obs" not in info:
        return after_step
    done = np.asarray(info["_final_obs"])
    if key == "text":
        return [str(f) if d else t for t, f, d in zip(after_step, final, done)]
    return np.where(done[:, None, None, None], final, after_step)
