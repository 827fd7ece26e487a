"""Invariants every standard-suite env keeps (Fetch, mazes, MetaWorld): Gymnasium's env checker, the suite's own
env unchanged underneath, seeding, vector copies, HER, and refused actions."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.maze import MAZES
from envs.meta_world import TASKS as MW_TASKS

FETCH_IDS = [f"crlab/Fetch{t}-v0" for t in ("Reach", "Push", "PickAndPlace", "Slide")]
MAZE_IDS = [f"crlab/{m}-v0" for m in MAZES]
MW_IDS = [f"crlab/{form}-{t[:-3]}-v0" for t in MW_TASKS for form in ("MetaWorld", "MetaWorldGoal")]
ALL_IDS = FETCH_IDS + MAZE_IDS + MW_IDS
# one of each suite and form, for the costlier checks
SAMPLE_IDS = ["crlab/FetchPush-v0", "crlab/PointMaze-Medium-v0", "crlab/AntMaze-UMaze-v0",
              "crlab/MetaWorld-push-v0", "crlab/MetaWorldGoal-door-open-v0"]


def _suite_env(env_id):
    """The suite's own env that the crlab env wraps, made the same way (same kwargs), without wrappers."""
    crlab = gymnasium.make(env_id).unwrapped
    return crlab, crlab.task.envs[0]


def _actions(env, n, seed=0):
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def _equal(a, b):
    if isinstance(a, dict):
        return all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert isinstance(env.unwrapped.describe(), str)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape[2] == 3 and frame.std() > 0


@pytest.mark.parametrize("env_id", SAMPLE_IDS)
def test_the_suite_env_is_unchanged_underneath(env_id):
    """Observation, reward and success at each step equal those of a fresh suite env driven the same way."""
    crlab = gymnasium.make(env_id).unwrapped
    task = crlab.task
    reference = type(task)(1, **_task_kwargs(task)).envs[0]  # a second, independent copy of the suite env
    obs, _ = crlab.reset(seed=5)
    ref_obs = task.convert_obs(_reset(task, reference, 5))
    assert _equal(obs, ref_obs)
    for action in _actions(crlab, 40):
        obs, reward, terminated, _, info = crlab.step(action)
        ref_obs, ref_reward, ref_terminated, _, ref_info = reference.step(action)
        assert _equal(obs, task.convert_obs(ref_obs))
        assert bool(info["is_success"]) == bool(ref_info[task.success_key])
        assert terminated == ref_terminated
        if "MetaWorldGoal" not in env_id:  # the goal form's reward is its goal reward (tests/envs/test_meta_world)
            assert reward == ref_reward


def _task_kwargs(task):
    if hasattr(task, "goal_mode"):
        return {"task": task.task_name, "goal_conditioned": task.goal_conditioned}
    if hasattr(task, "maze_name"):
        return {"maze": task.maze_name}
    return {"task": task.task_name}


def _reset(task, env, seed):
    if hasattr(task, "goal_mode"):
        env.seed(seed)
        return env.reset()[0]
    return env.reset(seed=seed)[0]


@pytest.mark.parametrize("env_id", SAMPLE_IDS)
def test_seeding_is_deterministic(env_id):
    # MetaWorld's fixed variation has no randomness at all; its MT1 form draws a variation per reset
    kwargs = {"goal_mode": "mt1"} if "MetaWorld" in env_id else {}

    def run(seed):
        env = gymnasium.make(env_id, **kwargs)
        out = [env.reset(seed=seed)[0]]
        out += [env.step(a)[0] for a in _actions(env, 10)]
        return out

    a, b, c = run(3), run(3), run(4)
    assert all(_equal(x, y) for x, y in zip(a, b))
    assert not all(_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("env_id", ["crlab/FetchReach-v0", "crlab/PointMaze-UMaze-v0", "crlab/MetaWorldGoal-push-v0"])
def test_vector_copy_i_replays_the_single_env_seeded_s_plus_i(env_id):
    """Across an autoreset too: episodes of 6 steps, 9 steps taken."""
    n, steps = 3, 9
    vec = gymnasium.make_vec(env_id, num_envs=n, max_episode_steps=6)
    vec_obs = [vec.reset(seed=10)[0]]
    actions = np.stack([_actions(gymnasium.make(env_id), steps, seed=i) for i in range(n)], 1)
    vec_obs += [vec.step(a)[0] for a in actions]
    for i in range(n):
        single = gymnasium.make(env_id, max_episode_steps=6)
        obs = [single.reset(seed=10 + i)[0]]
        for t, a in enumerate(actions[:, i]):
            o, _, term, trunc, _ = single.step(a)
            obs.append(single.reset()[0] if term or trunc else o)
        for t in range(steps + 1):
            leaf = {k: v[i] for k, v in vec_obs[t].items()} if isinstance(vec_obs[t], dict) else vec_obs[t][i]
            assert _equal(leaf, obs[t]), (i, t)


@pytest.mark.parametrize("env_id", ["crlab/FetchPush-v0", "crlab/PointMaze-UMaze-v0", "crlab/MetaWorldGoal-push-v0"])
def test_sb3_her_runs_on_goal_envs(env_id):
    from stable_baselines3 import SAC, HerReplayBuffer

    env = gymnasium.make(env_id, max_episode_steps=20)  # HER samples from finished episodes only
    model = SAC("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, learning_starts=64, batch_size=32,
                policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    model.learn(150)
    assert model.replay_buffer.size() > 0


@pytest.mark.parametrize("env_id", ["crlab/FetchPush-v0", "crlab/MetaWorld-push-v0"])
def test_bad_actions_are_refused_before_stepping(env_id):
    vec = gymnasium.make_vec(env_id, num_envs=2)
    obs, _ = vec.reset(seed=0)
    good = np.zeros(vec.action_space.shape, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        vec.step(good[:, :2])
    bad = good.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"copies \[1\]"):
        vec.step(bad)
    after, *_ = vec.step(good)  # nothing was stepped by the refused calls: the copies still run
    assert vec.observation_space.contains(after)


def test_pixels_and_goal_images():
    env = gymnasium.make("crlab/FetchPush-v0", obs_type="pixels", image_size=48, frame_stack=2, goal_image=True)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (6, 48, 48) and obs["goal_image"].shape == (3, 48, 48)
    assert not np.array_equal(obs["pixels"][-3:], obs["goal_image"])  # the block is elsewhere than at its goal
    assert set(obs) == {"pixels", "goal_image", "achieved_goal", "desired_goal"}
    for env_id in ("crlab/PointMaze-UMaze-v0", "crlab/MetaWorldGoal-push-v0"):
        obs, _ = gymnasium.make(env_id, obs_type="state+pixels", image_size=32, goal_image=True).reset(seed=0)
        assert obs["pixels"].shape == (3, 32, 32) and not np.array_equal(obs["pixels"], obs["goal_image"])
    with pytest.raises(ValueError, match="goal_image"):
        gymnasium.make("crlab/FetchReach-v0", obs_type="pixels", goal_image=True)


def test_metaworld_worker_processes_match_the_in_process_copies():
    """The vector MetaWorld env steps its copies in worker processes; the copies are those of the in-process form,
    frames and descriptions included, and closing it ends the workers."""
    kwargs = {"num_envs": 3, "goal_mode": "mt1", "max_episode_steps": 4}
    workers = gymnasium.make_vec("crlab/MetaWorldGoal-sweep-into-v0", **kwargs)
    local = gymnasium.make_vec("crlab/MetaWorldGoal-sweep-into-v0", workers=0, **kwargs)
    assert len(workers.unwrapped.task.processes) == 2
    a, b = workers.reset(seed=3)[0], local.reset(seed=3)[0]
    assert _equal(a, b)
    for action in np.random.default_rng(0).uniform(-1, 1, (6, 3, 4)).astype(np.float32):
        (a, ra, ta, ua, ia), (b, rb, tb, ub, ib) = workers.step(action), local.step(action)
        assert _equal(a, b) and np.array_equal(ra, rb) and np.array_equal(ta, tb) and np.array_equal(ua, ub)
        assert np.array_equal(ia["is_success"], ib["is_success"])
    assert workers.unwrapped.describe() == local.unwrapped.describe()
    assert np.array_equal(workers.unwrapped.task.render(2), local.unwrapped.task.render(2))
    processes = workers.unwrapped.task.processes
    workers.close()
    assert all(p.poll() is not None for p in processes)
