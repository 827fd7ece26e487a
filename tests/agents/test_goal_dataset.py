"""Offline goal datasets: the file round trip, OGBench's layout, clear errors, and what offline CRL / GCBC learn from."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents import make_agent
from agents.goal_dataset import STEP_FIELDS, GoalDatasetError, episode_bounds, load_goal_dataset, save_goal_dataset
from agents.networks import TanhGaussianPolicy

CPU = torch.device("cpu")
SPACE = spaces.Dict({"observation": spaces.Box(-np.inf, np.inf, (3,)), "achieved_goal": spaces.Box(-np.inf, np.inf, (2,)),
                     "desired_goal": spaces.Box(-np.inf, np.inf, (2,))})
ACTIONS = spaces.Box(-1, 1, (2,))


def steps(lengths=(3, 2), seed=0):
    """Hand-made episodes: observation = (t, episode, 1), achieved goal = (t, episode); actions in [-1, 1]."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in STEP_FIELDS}
    for e, length in enumerate(lengths):
        for t in range(length):
            rows["observations"].append([t, e, 1.0])
            rows["next_observations"].append([t + 1, e, 1.0])
            rows["achieved_goals"].append([t, e])
            rows["next_achieved_goals"].append([t + 1, e])
            rows["actions"].append(rng.uniform(-0.9, 0.9, 2))
            rows["terminals"].append(t == length - 1)
    return {k: np.asarray(v) for k, v in rows.items()}


def test_written_equals_read_and_episode_bounds(tmp_path):
    data = steps()
    path = save_goal_dataset(tmp_path / "d.npz", data, env_id="crlab/Reach-v0", policy="noisy", noise=0.5, seed=1, episodes=2)
    read = load_goal_dataset(path)
    for key in STEP_FIELDS:
        np.testing.assert_array_equal(read[key], data[key].astype(read[key].dtype))
    assert str(read["env_id"]) == "crlab/Reach-v0" and float(read["noise"]) == 0.5
    assert episode_bounds(read["terminals"]).tolist() == [[0, 3], [3, 5]]
    with np.load(path, allow_pickle=False) as f:  # nothing pickled
        assert set(f.files) >= set(STEP_FIELDS)


def test_ogbench_files_read_with_observations_as_goals(tmp_path):
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.savez(tmp_path / "og.npz", observations=obs, actions=np.zeros((6, 1)), terminals=np.array([0, 0, 1, 0, 0, 1]))
    read = load_goal_dataset(tmp_path / "og.npz")
    np.testing.assert_array_equal(read["achieved_goals"], obs)
    np.testing.assert_array_equal(read["next_achieved_goals"][:2], obs[1:3])  # next row within an episode


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b"not a zip"), "unreadable"),
    (lambda p: np.savez(p, observations=np.zeros((2, 1))), r"lacks \['actions', 'terminals'\]"),
    (lambda p: np.savez(p, observations=np.zeros((2, 1)), actions=np.zeros((2, 1)), terminals=np.zeros(2)), "no complete episode"),
    (lambda p: np.savez(p, observations=np.full((2, 1), np.nan), actions=np.zeros((2, 1)), terminals=np.ones(2)), "NaN"),
])
def test_bad_dataset_files_give_one_line_errors_naming_the_file(tmp_path, write, message):
    path = tmp_path / "bad.npz"
    write(path)
    with pytest.raises(GoalDatasetError, match=message) as err:
        load_goal_dataset(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="make_dataset"):
        load_goal_dataset(tmp_path / "missing.npz")


def test_offline_crl_buffer_holds_the_dataset_and_goals_come_from_each_episodes_future():
    agent = make_agent("crl", {"hidden": [16], "repr_dim": 8, "batch_size": 64}, SPACE, ACTIONS, 1, 5, CPU)
    agent.set_dataset(steps())
    assert len(agent.buffer) == 2 and agent.offline
    batch = agent.buffer.sample(64, discount=0.9)
    obs, goal = batch["observation"], batch["goal"]
    assert torch.equal(goal[:, 1], obs[:, 1])  # same episode
    assert (goal[:, 0] > obs[:, 0]).all()  # strictly later in it
    with pytest.raises(ValueError, match="widths"):
        bad = steps()
        bad["observations"] = bad["next_observations"] = np.zeros((5, 4))
        agent.set_dataset(bad)


def test_log_prob_of_a_sampled_action_is_the_sampling_log_prob():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(4, 2, [8])
    x = torch.randn(16, 4)
    action, log_prob = policy(x)
    torch.testing.assert_close(policy.log_prob(x, action), log_prob, atol=1e-3, rtol=1e-3)


def test_crl_behaviour_cloning_term_is_the_datas_negative_log_likelihood():
    torch.manual_seed(0)
    options = {"hidden": [16], "repr_dim": 8, "batch_size": 4}
    with_bc = make_agent("crl", {**options, "bc_coef": 0.5}, SPACE, ACTIONS, 1, 5, CPU)
    batch = {"observation": torch.randn(4, 3), "action": torch.rand(4, 2) * 1.8 - 0.9, "goal": torch.randn(4, 2)}
    expected = -with_bc.actor.log_prob(torch.cat([batch["observation"], batch["goal"]], -1), batch["action"]).mean()
    metrics = with_bc.update_on(batch)
    torch.testing.assert_close(metrics["bc_loss"], expected.detach())
    assert "bc_loss" not in make_agent("crl", options, SPACE, ACTIONS, 1, 5, CPU).update_on(batch)


def test_gcbc_fits_the_datas_actions_for_its_hindsight_goals():
    data = steps(lengths=(6,) * 20)
    data["actions"] = np.tanh(data["observations"][:, :2] - 0.5 * data["achieved_goals"])  # a function of (s, g)
    torch.manual_seed(0)
    agent = make_agent("gcbc", {"hidden": [64, 64], "batch_size": 128, "lr": 3e-3}, SPACE, ACTIONS, 1, 6, CPU)
    agent.set_dataset(data)
    first = agent.update()["bc_loss"].item()
    for _ in range(300):
        last = agent.update()["bc_loss"].item()
    assert last < first - 1.0  # the likelihood of the data's actions rose


def test_expectile_loss_and_hindsight_reward_known_answers():
    from agents.gciql import expectile_loss, hindsight_reward

    assert expectile_loss(torch.tensor([1.0, -1.0]), 0.9).item() == pytest.approx(0.5)  # (0.9 + 0.1) / 2
    assert expectile_loss(torch.tensor([2.0]), 0.9).item() == pytest.approx(3.6)
    reward, reached = hindsight_reward(torch.tensor([1, 2, 1]), torch.tensor([False, False, True]))
    assert reward.tolist() == [0.0, -1.0, -1.0] and reached.tolist() == [1.0, 0.0, 0.0]


def test_gciql_values_a_near_goal_above_a_far_one():
    data = steps(lengths=(8,) * 30)
    torch.manual_seed(0)
    agent = make_agent("gciql", {"hidden": [64, 64], "batch_size": 128, "lr": 1e-3, "discount": 0.9, "target_tau": 0.05},
                       SPACE, ACTIONS, 1, 8, CPU)
    agent.set_dataset(data)
    for _ in range(400):
        metrics = agent.update()
    assert set(metrics) >= {"value_loss", "critic_loss", "actor_loss"}
    obs = torch.tensor([[2.0, 5.0, 1.0]])
    value = lambda goal: agent.value(torch.cat([obs, torch.tensor([goal])], -1)).item()  # noqa: E731
    near, far = value([3.0, 5.0]), value([7.0, 5.0])  # 1 step vs 5 steps ahead in episode 5
    assert -1.5 < near and far < near - 0.5  # -(1 - 0.9^(k-1)) / (1 - 0.9): 0 vs -3.4 in the limit


def test_gciql_ddpgbc_actor_climbs_its_critic_towards_the_action_that_reaches_the_goal():
    """One-step episodes whose action's sign picks where the goal lands (x = +1 or -1): with alpha = 0 (no
    behaviour cloning) only the critic's gradient can point the actor's action to the goal's side."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.9, 0.9, (300, 2))
    zeros = np.zeros((300, 2))
    data = {"observations": np.tile([0.0, 0.0, 1.0], (300, 1)), "next_observations": np.tile([1.0, 0.0, 1.0], (300, 1)),
            "achieved_goals": zeros, "next_achieved_goals": np.stack([np.sign(actions[:, 0]), zeros[:, 1]], 1),
            "actions": actions, "terminals": np.ones(300, bool)}
    torch.manual_seed(0)
    agent = make_agent("gciql", {"actor_loss": "ddpgbc", "alpha": 0.0, "hidden": [64, 64], "batch_size": 128, "lr": 1e-3},
                       SPACE, ACTIONS, 1, 1, CPU)
    agent.set_dataset(data)
    for _ in range(300):
        metrics = agent.update()
    assert set(metrics) >= {"critic_loss", "actor_loss", "bc_loss"} and "advantage_weight" not in metrics
    obs = {"observation": torch.tensor([[0.0, 0.0, 1.0]] * 2), "desired_goal": torch.tensor([[1.0, 0.0], [-1.0, 0.0]])}
    first = agent.act(obs, deterministic=True)[:, 0]
    assert first[0] > 0.3 and first[1] < -0.3, first


def test_gciql_refuses_an_unknown_actor_loss_naming_the_choices():
    with pytest.raises(ValueError, match="actor_loss='dpg' must be one of awr, ddpgbc"):
        make_agent("gciql", {"actor_loss": "dpg"}, SPACE, ACTIONS, 1, 8, CPU)
