"""Reward metrics on recorded rollouts: known answers on Reach rollouts recorded with the dense reward."""

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers crlab/Reach-v0)
from envs.recorder import RolloutFileError, RolloutRecorder
from rewards.base import RewardModule, batch_to_tensors
from rewards.evaluation import (
    correlations,
    env_reward_fn,
    evaluate_module,
    load_rollouts,
    module_reward_fn,
    segment_preference_accuracy,
    success_auroc,
    transition_batch,
    transition_rewards,
)


class Distance(RewardModule):
    """scale · ‖achieved − desired‖ of s' + offset: the dense reward for scale −1, offset 0. Reads next_obs only."""

    reads = frozenset({"next_obs"})

    def __init__(self, scale=-1.0, offset=0.0):
        super().__init__()
        self.scale, self.offset, self.calls = scale, offset, 0

    def forward(self, batch):
        self.calls += len(batch["next_obs"]["achieved_goal"])
        next_obs = batch["next_obs"]
        return self.scale * torch.linalg.norm(next_obs["achieved_goal"] - next_obs["desired_goal"], dim=-1) + self.offset


class FrameBrightness(RewardModule):
    """Mean pixel of the frame after the step; reads no observations (so reads=None exercises the slow path)."""

    needs = frozenset({"frames"})

    def forward(self, batch):
        return batch["frames"].float().mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def rollout_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rollouts")
    for k in range(2):
        env = RolloutRecorder(gymnasium.make("crlab/Reach-v0", render_mode="rgb_array", width=24, height=24,
                                             reward_type="dense"))
        env.action_space.seed(k)
        for episode in range(2):
            env.reset(seed=10 * k + episode)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
        env.save(folder / f"rollout_{k}")
    return folder


@pytest.fixture(scope="module")
def data(rollout_dir):
    return load_rollouts(rollout_dir)


@pytest.fixture(scope="module")
def gt_fn(data):
    fn, why = env_reward_fn(data, gymnasium.make("crlab/Reach-v0", reward_type="dense"))
    assert why is None
    return fn


def test_loads_a_folder_with_episodes_numbered_across_files(data, rollout_dir):
    assert len(data) == 200 and data.env_id == "crlab/Reach-v0" and data.fps == 25
    assert np.unique(data.arrays["episode"]).tolist() == [0, 1, 2, 3]
    assert set(data.obs) == {"observation", "achieved_goal", "desired_goal"}
    one = load_rollouts(rollout_dir / "rollout_0.npz")
    assert len(one) == 100 and one.files == [rollout_dir / "rollout_0.npz"]
    # s of a transition is s' of the row before, except at episode starts
    prev = data.prev_row
    inside = data.arrays["step"] > 0
    np.testing.assert_array_equal(data.obs["achieved_goal"][inside], data.next_obs["achieved_goal"][prev[inside]])


def test_bad_and_mismatched_files_are_named(rollout_dir, tmp_path):
    bad = tmp_path / "bad" / "rollout.npz"
    bad.parent.mkdir()
    bad.write_bytes(b"not a zip file")
    with pytest.raises(RolloutFileError, match=str(bad)):
        load_rollouts(bad.parent)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.npz").write_bytes((rollout_dir / "rollout_0.npz").read_bytes())
    arrays = dict(np.load(rollout_dir / "rollout_1.npz"))
    arrays["frames"] = arrays["frames"][:, :12]  # other frame size
    np.savez(mixed / "b.npz", **arrays)
    with pytest.raises(RolloutFileError, match=rf"{mixed / 'b.npz'} does not match .*frames"):
        load_rollouts(mixed)
    with pytest.raises(FileNotFoundError):
        load_rollouts(tmp_path / "nowhere")


def test_memoised_reward_function_equals_direct_evaluation(data):
    module = Distance()
    rng = np.random.default_rng(0)
    s, a, s2 = (rng.integers(0, len(data), 300) for _ in range(3))
    s2[:150] = s2[150:]  # repeats: evaluated once
    values = module_reward_fn(module, data)(s, a, s2)
    assert module.calls == len(np.unique(s2))
    direct = module(batch_to_tensors(transition_batch(data, s, a, s2, None), "cpu"))
    np.testing.assert_allclose(values, direct.numpy(), rtol=1e-5)


def test_transition_rewards_of_the_dense_reward_module_are_the_recorded_rewards(data):
    np.testing.assert_allclose(transition_rewards(Distance(), data), data.arrays["reward"], rtol=1e-5, atol=1e-6)
    brightness = transition_rewards(FrameBrightness(), data)
    np.testing.assert_allclose(brightness, data.arrays["frames"].reshape(len(data), -1).mean(1), rtol=1e-5)


def test_known_answers_for_affine_and_negated_rewards(data, gt_fn):
    affine, _ = evaluate_module(Distance(scale=-3.0, offset=2.0), data, gt_fn)
    assert affine["pearson"] == pytest.approx(1.0, abs=1e-5) and affine["spearman"] == pytest.approx(1.0)
    assert affine["epic"] == pytest.approx(0.0, abs=1e-3)
    assert affine["preference_accuracy"] == pytest.approx(1.0)
    negated, _ = evaluate_module(Distance(scale=1.0), data, gt_fn)
    assert negated["pearson"] == pytest.approx(-1.0, abs=1e-5) and negated["epic"] == pytest.approx(1.0, abs=1e-3)
    assert negated["preference_accuracy"] == pytest.approx(0.0)
    reference, rewards = evaluate_module(None, data, gt_fn)
    assert reference["epic"] == pytest.approx(0.0, abs=1e-6) and np.array_equal(rewards, data.arrays["reward"])


def test_env_reward_must_reproduce_the_recording(data):
    fn, why = env_reward_fn(data, gymnasium.make("crlab/Reach-v0"))  # sparse: not what was recorded
    assert fn is None and "reward_type=dense" in why
    fn, why = env_reward_fn(data, None)
    assert fn is None and "compute_reward" in why


def test_metric_helpers_known_values():
    gt = np.array([0.0, 1.0, 2.0, 3.0])
    assert correlations(2 * gt + 1, gt) == pytest.approx({"pearson": 1.0, "spearman": 1.0})
    assert correlations(np.ones(4), gt) == {"pearson": None, "spearman": None}
    assert success_auroc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 1, 1], bool)) == 1.0
    assert success_auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([0, 0, 1, 1], bool)) == 0.0
    assert success_auroc(gt, np.zeros(4, bool)) is None
    pairs = np.array([[[0, 1]], [[2, 3]]])  # one pair of 2-step segments: returns 1 vs 5
    assert segment_preference_accuracy(gt, gt, pairs) == 1.0
    assert segment_preference_accuracy(-gt, gt, pairs) == 0.0
    assert segment_preference_accuracy(gt, np.zeros(4), pairs) is None  # only ties
