import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from envs.meta_world import SUCCESS, TASKS, scripted_policy


@pytest.mark.parametrize("task", TASKS)
def test_scripted_policy_succeeds_and_the_goal_form_agrees_with_metaworld(task):
    """MetaWorld's own policy solves the task, random actions do not, and the goal form's compute_reward
    declares success exactly where MetaWorld's info["success"] does."""
    plain = gymnasium.make(f"crlab/MetaWorld-{task[:-3]}-v0")
    goal = gymnasium.make(f"crlab/MetaWorldGoal-{task[:-3]}-v0")
    policy = scripted_policy(task)
    obs, _ = plain.reset(seed=0)
    goal_obs, _ = goal.reset(seed=0)
    success_steps = 0
    for _ in range(150):
        action = policy.get_action(obs)
        obs, _, _, _, info = plain.step(action)
        goal_obs, goal_reward, _, _, goal_info = goal.step(action)
        assert bool(goal_info["is_success"]) == bool(info["is_success"])
        assert (goal_reward == 0.0) == bool(info["is_success"])
        np.testing.assert_array_equal(goal_obs["observation"], obs[:36])
        np.testing.assert_array_equal(goal_obs["achieved_goal"], obs[4:7])
        np.testing.assert_array_equal(goal_obs["desired_goal"], obs[36:39])
        success_steps += bool(info["is_success"])
    assert success_steps > 0
    obs, _ = plain.reset(seed=0)
    plain.action_space.seed(0)
    random_success = [bool(plain.step(plain.action_space.sample())[4]["is_success"]) for _ in range(150)]
    assert sum(random_success) < success_steps


def test_compute_reward_uses_metaworlds_coordinates_and_threshold():
    door = gymnasium.make("crlab/MetaWorldGoal-door-open-v0").unwrapped  # success: |x - target x| <= 0.08
    target = np.array([[0.0, 0.0, 0.0]] * 3)
    achieved = np.array([[0.07, 5.0, 5.0], [0.09, 0.0, 0.0], [-0.08, 0.0, 0.0]])
    np.testing.assert_array_equal(door.compute_reward(achieved, target, None), [0.0, -1.0, 0.0])
    assert SUCCESS["door-open-v3"] == ((0,), 0.08)
    dense = gymnasium.make("crlab/MetaWorldGoal-push-v0", reward_type="dense").unwrapped
    np.testing.assert_allclose(dense.compute_reward(np.array([0.3, 0.4, 0.0]), np.zeros(3), None), -0.5)
    with pytest.raises(AttributeError, match="is not a goal env"):  # the plain form is no GoalEnv for SB3 / HER
        gymnasium.make("crlab/MetaWorld-push-v0").unwrapped.compute_reward(np.zeros(3), np.zeros(3), None)


def _goals(goal_mode, resets=6):
    env = gymnasium.make("crlab/MetaWorldGoal-push-v0", goal_mode=goal_mode)
    goals = [env.reset(seed=0)[0]["desired_goal"]]
    goals += [env.reset()[0]["desired_goal"] for _ in range(resets - 1)]
    return np.array(goals), env.unwrapped.task.variations


def test_goal_modes():
    fixed, _ = _goals("fixed")
    assert np.allclose(fixed, fixed[0])
    mt1, variations = _goals("mt1")
    assert len(np.unique(mt1, axis=0)) > 1
    env = gymnasium.make("crlab/MetaWorldGoal-push-v0", goal_mode="fixed")
    targets = []
    for task_id in range(len(variations)):  # the MT1 variations' goals, read through the fixed form
        env.unwrapped.task.envs[0].set_task(variations[task_id])
        targets.append(env.reset(seed=0)[0]["desired_goal"])
    assert all(np.isclose(np.array(targets), g).all(axis=1).any() for g in mt1)
    random, _ = _goals("random")
    assert len(np.unique(random, axis=0)) == len(random)
    assert not any(np.isclose(np.array(targets), g).all(axis=1).any() for g in random)


def test_bad_options_list_the_choices():
    with pytest.raises(ValueError, match="push-v3"):
        gymnasium.make("crlab/MetaWorld-push-v0", task="pushh-v3")
    with pytest.raises(ValueError, match="mt1"):
        gymnasium.make("crlab/MetaWorld-push-v0", goal_mode="sometimes")
    with pytest.raises(ValueError, match="0..49"):
        gymnasium.make("crlab/MetaWorld-push-v0", task_id=50)
