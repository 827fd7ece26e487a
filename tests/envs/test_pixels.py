import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.pixels import PixelTask

MUJOCO_ENVS = ["crlab/Reach-v0", "crlab/Push-v0"]


@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_pixel_obs_spaces_shapes_and_check_env(env_id):
    env = gymnasium.make(env_id, obs_type="pixels", image_size=64, frame_stack=3, goal_image=True)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"pixels", "goal_image", "achieved_goal", "desired_goal"}
    assert obs["pixels"].shape == (9, 64, 64) and obs["pixels"].dtype == np.uint8
    assert obs["goal_image"].shape == (3, 64, 64) and obs["goal_image"].dtype == np.uint8
    assert env.observation_space.contains(obs) and obs["pixels"].std() > 0

    both = gymnasium.make(env_id, obs_type="state+pixels", image_size=84)
    obs, _ = both.reset(seed=0)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal", "pixels"} and obs["pixels"].shape == (3, 84, 84)
    assert both.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_vector_face_renders_each_copy_like_the_single_env(env_id):
    n, seed = 3, 5
    vec = gymnasium.make_vec(env_id, num_envs=n, obs_type="pixels", image_size=64, frame_stack=2, goal_image=True)
    assert isinstance(vec.unwrapped.task, PixelTask)
    vec_obs, _ = vec.reset(seed=seed)
    assert vec_obs["pixels"].shape == (n, 6, 64, 64) and vec.observation_space.contains(vec_obs)
    actions = np.random.default_rng(0).uniform(-1, 1, (5, n, 2)).astype(np.float32)
    for a in actions:
        vec_obs, *_ = vec.step(a)
    for i in range(n):
        single = gymnasium.make(env_id, obs_type="pixels", image_size=64, frame_stack=2, goal_image=True)
        obs, _ = single.reset(seed=seed + i)
        for a in actions:
            obs, *_ = single.step(a[i])
        for key in ("pixels", "goal_image"):  # each copy's own camera sees only its own copy
            diff = np.abs(vec_obs[key][i].astype(int) - obs[key])
            assert diff.mean() < 0.5, (key, diff.mean())


def test_frame_stack_keeps_the_last_frames_oldest_first():
    env = gymnasium.make("crlab/Reach-v0", obs_type="pixels", image_size=32, frame_stack=3)
    obs, _ = env.reset(seed=0)
    first = obs["pixels"]
    np.testing.assert_array_equal(first[0:3], first[6:9])  # a fresh stack repeats the first frame
    action = np.ones(2, np.float32)
    for _ in range(2):
        prev = obs["pixels"]
        obs, *_ = env.step(action)
        np.testing.assert_array_equal(obs["pixels"][0:6], prev[3:9])  # older frames shift one slot back
        assert not np.array_equal(obs["pixels"][6:9], prev[6:9])
    task = env.unwrapped.task
    newest = task.task.render_images(np.array([0]), 32, 32)[0].transpose(2, 0, 1)
    np.testing.assert_array_equal(obs["pixels"][6:9], newest)


@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_action_repeat_sums_rewards_and_slows_render_fps(env_id):
    k, seed = 3, 2
    repeated = gymnasium.make(env_id, reward_type="dense", action_repeat=k)
    plain = gymnasium.make(env_id, reward_type="dense")
    assert repeated.metadata["render_fps"] == plain.metadata["render_fps"] / k
    obs_r, _ = repeated.reset(seed=seed)
    obs_p, _ = plain.reset(seed=seed)
    rng = np.random.default_rng(0)
    for _ in range(4):
        a = rng.uniform(-1, 1, 2).astype(np.float32)
        obs_r, reward, *_ = repeated.step(a)
        total = sum(plain.step(a)[1] for _ in range(k))
        assert reward == pytest.approx(total)
    obs_p = plain.unwrapped.task.observe()
    np.testing.assert_array_equal(obs_r["observation"], obs_p["observation"][0])


@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_goal_image_differs_from_the_frame_and_rendering_leaves_the_state_alone(env_id):
    env = gymnasium.make(env_id, obs_type="state+pixels", image_size=64, goal_image=True)
    plain = gymnasium.make(env_id)
    obs, _ = env.reset(seed=4)
    obs_p, _ = plain.reset(seed=4)
    assert np.abs(obs["goal_image"].astype(int) - obs["pixels"]).mean() > 0.5
    for a in np.random.default_rng(1).uniform(-1, 1, (10, 2)).astype(np.float32):
        obs, *_ = env.step(a)
        obs_p, *_ = plain.step(a)
    np.testing.assert_array_equal(obs["observation"], obs_p["observation"])
    goal = env.unwrapped.task.goal_frames[0]
    env.reset(seed=4)
    np.testing.assert_array_equal(env.unwrapped.task.goal_frames[0], goal)  # same seed, same goal image


def test_push_goal_image_is_the_frame_with_the_block_moved_onto_the_goal():
    env = gymnasium.make("crlab/Push-v0", obs_type="pixels", image_size=64, goal_image=True).unwrapped
    obs, _ = env.reset(seed=0)
    push = env.task.task
    push.sim.qpos[0, 2:9] = [*obs["desired_goal"], 0.025, 1.0, 0.0, 0.0, 0.0]  # copy 0 sits at the origin
    frame = push.render_images(np.array([0]), 64, 64)[0].transpose(2, 0, 1)
    np.testing.assert_array_equal(frame, obs["goal_image"])


def test_options_are_checked():
    with pytest.raises(ValueError, match="state\\+pixels"):
        gymnasium.make("crlab/Push-v0", obs_type="rgb")
    with pytest.raises(ValueError, match="pixel"):
        gymnasium.make("crlab/Push-v0", frame_stack=3)
    with pytest.raises(ValueError, match="image_size=0 must be an integer >= 1"):  # the bad one is named
        gymnasium.make("crlab/Push-v0", obs_type="pixels", image_size=0)


def test_frame_stack_repeats_the_first_frame_and_drops_the_oldest():
    from envs.frame_stack import FrameStack

    stack = FrameStack(num_envs=2, k=3, size=1)
    frame = lambda v: np.full((1, 3, 1, 1), v, dtype=np.uint8)  # noqa: E731
    stack.reset([0], frame(1))
    stack.reset([1], frame(7))
    stack.push([0], frame(2))
    stack.push(slice(None), np.concatenate([frame(3), frame(8)]))
    obs = stack.observation()
    assert obs.shape == (2, 9, 1, 1)
    assert obs[0, :, 0, 0].tolist() == [1] * 3 + [2] * 3 + [3] * 3  # oldest first
    assert obs[1, :, 0, 0].tolist() == [7] * 6 + [8] * 3  # a fresh stack repeated its first frame
    assert stack.newest(1)[:, 0, 0].tolist() == [8] * 3
