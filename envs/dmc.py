"""dm_control from pixels: the CURL benchmark tasks as Gymnasium envs, `crlab/DMC-{domain}-{task}-v0`.

Tasks: cartpole-swingup, reacher-easy, cheetah-run, walker-walk, finger-spin, ball_in_cup-catch. An observation is
a uint8 channel-first stack of the last `frame_stack` camera-0 frames, (3 * frame_stack, render_size, render_size),
oldest frame first; frames are rendered at 100x100 so that an agent can random-crop them to `image_size` (84), as
CURL does. Each action is repeated `action_repeat` times (CURL: 8 cartpole, 2 finger and walker, 4 the others) and
the rewards are summed. A dm_control episode is 1000 control steps and ends only by its time limit, so it lasts
ceil(1000 / action_repeat) agent steps and ends with truncated=True; terminated is always False.

dm_control physics cannot be merged into one MuJoCo model as our MuJoCo tasks are (each copy is a whole `suite`
environment with its own task, random state and renderer), so the batched task loops over its copies.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, Callable

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedEnv, BatchedTask, BatchedVectorEnv
from envs.frame_stack import FrameStack
from envs.mujoco_batch import RendererCache, load_triton_first

CURL_ACTION_REPEAT = {"cartpole": 8, "reacher": 4, "cheetah": 4, "walker": 2, "finger": 2, "ball_in_cup": 4}
TASKS = (
    ("cartpole", "swingup"),
    ("reacher", "easy"),
    ("cheetah", "run"),
    ("walker", "walk"),
    ("finger", "spin"),
    ("ball_in_cup", "catch"),
)
RENDER_SIZE = 100  # rendered frames; an agent random-crops them to IMAGE_SIZE
IMAGE_SIZE = 84
FRAME_STACK = 3
CAMERA_ID = 0  # CURL used camera 0 for these tasks (camera 2 only for quadruped)


def _suite() -> ModuleType:
    """`dm_control.suite`, imported after triton (see `load_triton_first`: dm_control renders through Mesa EGL)."""
    load_triton_first()
    from dm_control import suite

    return suite


# --- describe(): one sentence from each domain's physics state ------------------------------------------------
def _direction(offset: np.ndarray, horizontal: tuple[str, str], vertical: tuple[str, str], dead_zone: float) -> str:
    """'above and to the left of it' style words for a 2D offset (x, y-or-z); each pair is (negative, positive)."""
    up = vertical[int(offset[1] > 0)] if abs(offset[1]) > dead_zone else ""
    side = f"to the {horizontal[int(offset[0] > 0)]} of it" if abs(offset[0]) > dead_zone else ""
    if up and side:
        return f"{up} and {side}"
    return side or (f"{up} it" if up else "right next to it")


def _describe_cartpole(physics: Any) -> str:
    angle = math.degrees(math.acos(float(np.clip(physics.pole_angle_cosine()[0], -1.0, 1.0))))
    cart = physics.cart_position()
    side = f"{abs(cart):.2f} m {'right' if cart > 0 else 'left'} of the centre"
    side = "near the centre" if abs(cart) <= 0.05 else side
    return (f"The pole is {angle:.0f} degrees from upright, turning at {abs(physics.angular_vel()[0]):.1f} rad/s; "
            f"the cart is {side}.")


def _describe_reacher(physics: Any) -> str:
    offset, distance = physics.finger_to_target(), physics.finger_to_target_dist()
    radii = physics.named.model.geom_size[["target", "finger"], 0].sum()
    if distance <= radii:
        return f"The fingertip is on the red target ({distance:.2f} m away)."
    where = _direction(offset, ("left", "right"), ("below", "above"), 0.02)
    return f"The red target is {distance:.2f} m from the fingertip, {where}."


def _describe_cheetah(physics: Any) -> str:
    speed = physics.speed()
    if abs(speed) < 0.05:
        return "The cheetah stands still (the task asks for 10 m/s forward)."
    return f"The cheetah moves {'forward' if speed > 0 else 'backward'} at {abs(speed):.1f} m/s (the task asks for 10)."


def _describe_walker(physics: Any) -> str:
    tilt = math.degrees(math.acos(float(np.clip(physics.torso_upright(), -1.0, 1.0))))
    speed = physics.horizontal_velocity()
    pose = "standing" if physics.torso_height() > 1.0 and tilt < 30 else "falling or on the ground"
    return (f"The walker is {pose}: torso {physics.torso_height():.2f} m high, tilted {tilt:.0f} degrees, moving "
            f"{'forward' if speed >= 0 else 'backward'} at {abs(speed):.1f} m/s.")


def _describe_finger(physics: Any) -> str:
    spin = physics.hinge_velocity()
    touching = "touching" if physics.touch().max() > 0 else "not touching"
    # finger-spin rewards a hinge velocity <= -15 rad/s
    if abs(spin) < 0.05:
        return f"The spinner is still; the finger is {touching} it."
    direction = "the rewarded way" if spin < 0 else "the wrong way"
    return f"The spinner turns {direction} at {abs(spin):.1f} rad/s; the finger is {touching} it."


def _describe_ball_in_cup(physics: Any) -> str:
    if physics.in_target():
        return "The ball is in the cup."
    to_cup = physics.ball_to_target()
    where = _direction(-to_cup, ("left", "right"), ("below", "above"), 0.03)
    return f"The ball is {np.linalg.norm(to_cup):.2f} m from the cup, {where}."


DESCRIBE: dict[str, Callable[[Any], str]] = {
    "cartpole": _describe_cartpole,
    "reacher": _describe_reacher,
    "cheetah": _describe_cheetah,
    "walker": _describe_walker,
    "finger": _describe_finger,
    "ball_in_cup": _describe_ball_in_cup,
}


class DMCTask(BatchedTask):
    """N copies of one dm_control suite task seen from pixels: observations (N, 3 * frame_stack, R, R) uint8.

    `render_size` R is the rendered (observed) size; `image_size` is the crop an agent is meant to take (CURL
    random-crops 100 -> 84). `width`, `height` set the size of `render()` frames; left None, `render()` returns
    the newest observed frame (free: nothing is rendered twice).
    """

    def __init__(
        self,
        num_envs: int = 1,
        domain: str = "cartpole",
        task: str = "swingup",
        image_size: int = IMAGE_SIZE,
        render_size: int = RENDER_SIZE,
        frame_stack: int = FRAME_STACK,
        action_repeat: int | None = None,
        camera_id: int = CAMERA_ID,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        if (domain, task) not in TASKS:
            raise ValueError(f"{domain}-{task} is not one of {['-'.join(t) for t in TASKS]}")
        if image_size > render_size:
            raise ValueError(f"image_size={image_size} is larger than render_size={render_size}; nothing to crop from")
        super().__init__(num_envs)
        self.domain, self.task_name = domain, task
        self.image_size, self.render_size, self.frame_stack = image_size, render_size, frame_stack
        self.action_repeat = CURL_ACTION_REPEAT[domain] if action_repeat is None else action_repeat
        self.camera_id = camera_id
        self.width, self.height = width, height
        suite = _suite()
        self.envs = [suite.load(domain, task) for _ in range(num_envs)]
        self._renderers = RendererCache()  # one per frame size; a pickled or copied task starts without
        first = self.envs[0]
        # dm_control keeps the episode length private; it is 1000 control steps for every task here.
        self.control_steps = int(round(first._step_limit))
        self.episode_steps = math.ceil(self.control_steps / self.action_repeat)
        spec = first.action_spec()
        self.action_space = spaces.Box(spec.minimum.astype(np.float32), spec.maximum.astype(np.float32))
        self.observation_space = spaces.Box(0, 255, (3 * frame_stack, render_size, render_size), np.uint8)
        agent_dt = first.control_timestep() * self.action_repeat
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": 1.0 / agent_dt}
        self.stack = FrameStack(num_envs, frame_stack, render_size)
        self.time_up = np.zeros(num_envs, dtype=bool)

    def seed(self, seed: int | None) -> None:
        """Seed copy i's dm_control task random state (initial poses, targets) with `seed + i`."""
        super().seed(seed)
        for i, env in enumerate(self.envs):
            env.task.random.seed(None if seed is None else seed + i)

    def _camera_frame(self, copy: int, height: int, width: int) -> np.ndarray:
        """Copy `copy`'s camera image (height, width, 3). All copies render through one shared renderer per size
        (the copies share one model): dm_control's own `physics.render` makes a GL context per copy, ~70 MB each
        under Mesa (with a 50-copy evaluation env, a DMC run's peak RSS was 5,346 MB at step 0:
        docs/notes/pixel-replay-memory.md); the images are the same to the bit."""
        renderer = self._renderers.get((height, width), self.envs[0].physics.model.ptr, width, height)
        renderer.update_scene(self.envs[copy].physics.data.ptr, camera=self.camera_id)
        return renderer.render()

    def _frame(self, copy: int) -> np.ndarray:
        """Copy `copy`'s camera frame at the stack's size, (1, 3, R, R)."""
        return self._camera_frame(copy, self.render_size, self.render_size).transpose(2, 0, 1)[None]

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            self.envs[i].reset()
            self.stack.reset([i], self._frame(i))
        self.time_up[copies] = False

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.clip(actions, self.action_space.low, self.action_space.high)
        reward = np.zeros(self.num_envs)
        for i, env in enumerate(self.envs):
            for _ in range(self.action_repeat):
                time_step = env.step(actions[i])
                reward[i] += time_step.reward
                if time_step.last():
                    break
            self.time_up[i] = time_step.last()
            self.stack.push([i], self._frame(i))
        return reward, np.zeros(self.num_envs, dtype=bool), {}

    def observe(self) -> np.ndarray:
        return self.stack.observation()

    def render(self, copy: int) -> np.ndarray:
        if self.width is None and self.height is None:
            return self.stack.newest(copy).transpose(1, 2, 0).copy()
        return self._camera_frame(copy, self.height or self.width, self.width or self.height)

    def describe(self, copy: int) -> str:
        return DESCRIBE[self.domain](self.envs[copy].physics)

    def physics(self, copy: int) -> Any:
        """The dm_control `Physics` of one copy (state access for scripted policies and tests)."""
        return self.envs[copy].physics

    def close(self) -> None:
        self._renderers.close()
        envs, self.envs = self.envs, []
        for env in envs:
            env.physics.free()


class DMCEnv(BatchedEnv):
    """`crlab/DMC-{domain}-{task}-v0`: one dm_control task from pixels; truncates itself at the time limit."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12.5}  # instances set it from the task

    def __init__(self, domain: str = "cartpole", task: str = "swingup", render_mode: str | None = None,
                 **task_kwargs: Any) -> None:
        super().__init__(DMCTask(1, domain, task, **task_kwargs), render_mode)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, _, info = super().step(action)
        return obs, reward, terminated, bool(self.task.time_up[0]), info


class DMCVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/DMC-{domain}-{task}-v0`: a loop over N dm_control envs, same-step autoreset.

    Episodes are truncated at the task's time limit, ceil(1000 / action_repeat) steps, or at `max_episode_steps`
    if that is shorter.
    """

    def __init__(
        self,
        num_envs: int = 1,
        domain: str = "cartpole",
        task: str = "swingup",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        batched = DMCTask(num_envs, domain, task, **task_kwargs)
        limit = batched.episode_steps if max_episode_steps is None else min(max_episode_steps, batched.episode_steps)
        super().__init__(batched, limit, render_mode)
