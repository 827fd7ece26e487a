"""Reach on MuJoCo XLA: `gymnasium.make_vec("crlab/Reach-v0", num_envs=4096, backend="mjx")`.

The same arm, model file (assets/reach.xml), control mapping, episode length, reward and success test as
`envs/reach.py`, stepped for all copies at once by `jax.vmap(mujoco.mjx.step)` inside one jitted function, on the
device JAX runs on (a GPU with jax's CUDA wheels, else the CPU). Observations, rewards and infos come back as torch
tensors through DLPack (no host copy: on a GPU they stay there), and actions may be torch tensors on that device.

Differences from the C MuJoCo form, by design: float32 physics (JAX's default; the spaces say float32), random
resets drawn from one JAX key instead of one numpy generator per copy (same distributions), same-step autoreset only,
no rendering. `set_state` puts given joint positions and goals in place, which is how the tests compare
trajectories with the C MuJoCo env step by step.

Needs the `mjx` extra (`pip install "crlab[mjx]"`: jax, jaxlib and mujoco-mjx); without it, a clear ImportError.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gymnasium
import mujoco
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.goal_task import SUCCESS_DISTANCE
from envs.reach import ASSET, GOAL_RADIUS, JOINT_RANGES, ReachTask

MJX_EXTRA = 'backend="mjx" needs the mjx extra (jax, jaxlib, mujoco-mjx): pip install "crlab[mjx]"'


def _jax() -> tuple[Any, Any]:
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # not its INFO lines on absent ROCm / TPU
    # JAX takes 75 % of a GPU's memory at its first array by default; the torch agent shares the card with it
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax
        from mujoco import mjx
    except ImportError as err:
        raise ImportError(f"{MJX_EXTRA} ({err})") from None
    return jax, mjx


def to_torch(x: Any) -> torch.Tensor:
    """A JAX array as a torch tensor on the same device, sharing its memory (DLPack)."""
    return torch.from_dlpack(x)


class MJXReachVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` reach arms in MuJoCo XLA, one jitted step for all of them (same-step autoreset)."""

    tensor_io = True  # steps torch tensors in and out (the run engine passes actions without a host copy)

    def __init__(self, num_envs: int = 1, reward_type: str = "sparse", max_episode_steps: int | None = 50,
                 frame_skip: int = 4, render_mode: str | None = None, seed: int = 0) -> None:
        jax, mjx = _jax()
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}: the mjx backend does not render (use the default backend)")
        cpu = ReachTask(1, reward_type=reward_type, frame_skip=frame_skip)  # spaces, control range, reward: shared
        self._cpu = cpu
        self.num_envs, self.max_episode_steps, self.render_mode = num_envs, max_episode_steps or 2**31 - 1, None
        self.metadata = {**cpu.metadata, "render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.single_observation_space = spaces.Dict(
            {k: spaces.Box(-np.inf, np.inf, s.shape, np.float32) for k, s in cpu.observation_space.spaces.items()})
        self.single_action_space = cpu.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        model = mujoco.MjModel.from_xml_path(str(ASSET))
        self._jax = jax
        self._model = mjx.put_model(model)
        one = mjx.put_data(model, mujoco.MjData(model))
        self._data = jax.tree_util.tree_map(lambda x: jax.numpy.stack([x] * num_envs), one)
        site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "fingertip")
        low, high = jax.numpy.asarray(cpu.sim.ctrl_low), jax.numpy.asarray(cpu.sim.ctrl_high)
        sparse = reward_type == "sparse"
        step_all = jax.vmap(mjx.step, in_axes=(None, 0))
        kinematics = jax.vmap(mjx.kinematics, in_axes=(None, 0))
        jnp = jax.numpy

        def observe(data: Any, goal: Any) -> dict[str, Any]:
            tip = data.site_xpos[:, site, :2]
            obs = jnp.concatenate([jnp.cos(data.qpos), jnp.sin(data.qpos), data.qvel, tip], axis=1)
            return {"observation": obs, "achieved_goal": tip, "desired_goal": goal}

        def fresh(key: Any, data: Any, goal: Any, which: Any) -> tuple[Any, Any]:
            """Copies where `which`: new joint angles and goal (envs/reach.py's distributions), zero velocity."""
            k = jax.random.split(key, 4)
            qpos = jnp.stack([jax.random.uniform(k[j], (num_envs,), minval=low_j, maxval=high_j)
                              for j, (low_j, high_j) in enumerate(JOINT_RANGES)], 1)
            radius = jax.random.uniform(k[2], (num_envs,), minval=GOAL_RADIUS[0], maxval=GOAL_RADIUS[1])
            angle = jax.random.uniform(k[3], (num_envs,), minval=-np.pi, maxval=np.pi)
            new_goal = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], 1)
            w = which[:, None]
            data = data.replace(qpos=jnp.where(w, qpos, data.qpos), qvel=jnp.where(w, 0.0, data.qvel))
            return kinematics(self._model, data), jnp.where(w, new_goal, goal)

        def step(data: Any, goal: Any, elapsed: Any, key: Any, action: Any) -> tuple[Any, ...]:
            a = jnp.clip(action, -1.0, 1.0)
            data = data.replace(ctrl=low + 0.5 * (a + 1.0) * (high - low))
            data = jax.lax.fori_loop(0, frame_skip, lambda _, d: step_all(self._model, d), data)
            data = kinematics(self._model, data)  # as envs/mujoco_batch.py: site positions of the new state
            final = observe(data, goal)
            distance = jnp.linalg.norm(final["achieved_goal"] - goal, axis=-1)
            reward = -(distance >= SUCCESS_DISTANCE).astype(jnp.float32) if sparse else -distance
            elapsed = elapsed + 1
            truncated = elapsed >= self.max_episode_steps
            key, sub = jax.random.split(key)
            data, goal = fresh(sub, data, goal, truncated)
            return (data, goal, jnp.where(truncated, 0, elapsed), key, observe(data, goal), reward, truncated,
                    distance, final)

        self._observe, self._fresh, self._step = jax.jit(observe), jax.jit(fresh), jax.jit(step)
        self._kinematics = jax.jit(lambda data: kinematics(self._model, data))
        self._goal = jnp.zeros((num_envs, 2))
        self._elapsed = jnp.zeros(num_envs, jnp.int32)
        self._key = jax.random.PRNGKey(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        if seed is not None:
            self._key = self._jax.random.PRNGKey(seed)
        self._key, sub = self._jax.random.split(self._key)
        everyone = self._jax.numpy.ones(self.num_envs, bool)
        self._data, self._goal = self._fresh(sub, self._data, self._goal, everyone)
        self._elapsed = self._jax.numpy.zeros(self.num_envs, self._jax.numpy.int32)
        return self._torch(self._observe(self._data, self._goal)), {}

    def set_state(self, qpos: np.ndarray, goal: np.ndarray) -> dict[str, torch.Tensor]:
        """Put joint positions (N, 2) and goals (N, 2) in place, velocities zero, episode clocks at 0; returns the
        observation (tests compare trajectories with the C MuJoCo env from the same state)."""
        jnp = self._jax.numpy
        data = self._data.replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.zeros_like(self._data.qvel))
        self._data = self._kinematics(data)
        self._goal, self._elapsed = jnp.asarray(goal, jnp.float32), jnp.zeros(self.num_envs, jnp.int32)
        return self._torch(self._observe(self._data, self._goal))

    def step(self, actions: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """`actions` (N, 2): a torch tensor (taken through DLPack, on the env's device) or an array."""
        jnp = self._jax.numpy
        if isinstance(actions, torch.Tensor) and actions.device.type != "cpu":  # stays on the device
            action = self._jax.dlpack.from_dlpack(actions.detach().float().contiguous())
        elif isinstance(actions, torch.Tensor):  # XLA wants 64-byte-aligned host buffers: copy these 8 bytes a copy
            action = jnp.asarray(actions.detach().float().numpy())
        else:
            action = jnp.asarray(np.asarray(actions, np.float32))
        if action.shape != (self.num_envs, 2):
            raise ValueError(f"actions of shape {tuple(action.shape)}; this env takes ({self.num_envs}, 2)")
        self._data, self._goal, self._elapsed, self._key, obs, reward, truncated, distance, final = self._step(
            self._data, self._goal, self._elapsed, self._key, action)
        truncated_t = to_torch(truncated)
        terminated = torch.zeros_like(truncated_t)
        distance_t = to_torch(distance)
        success = distance_t < SUCCESS_DISTANCE
        info = {"is_success": success, "distance": distance_t, "final_obs": self._torch(final),
                "_final_obs": truncated_t, "final_info": {"is_success": success}, "_final_info": truncated_t}
        return self._torch(obs), to_torch(reward), terminated, truncated_t, info

    @property
    def compute_reward(self) -> Any:
        """envs/reach.py's vectorized goal reward (numpy, any leading shape), the same function."""
        return self._cpu.compute_reward

    @staticmethod
    def _torch(obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: to_torch(v) for k, v in obs.items()}

    def close_extras(self, **kwargs: Any) -> None:
        self._cpu.close()
