"""CPL: the loss against its formula, the SFT baseline, datasets, and short learning runs on toy preferences."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from agents import make_agent
from agents.cpl import CPLAgent, CPLConfig, cpl_loss, policy_keys
from agents.preference_dataset import PreferenceDatasetError, load_preference_dataset, save_preference_dataset

CPU = torch.device("cpu")


def test_cpl_loss_equals_the_formula():
    score_a, score_b = torch.tensor([1.0, -0.5, 2.0]), torch.tensor([0.3, 0.7, 2.0])
    label, bias = torch.tensor([1.0, 0.0, 0.25]), 0.5
    a_wins = -torch.log(torch.exp(score_a) / (torch.exp(score_a) + torch.exp(bias * score_b)))
    b_wins = -torch.log(torch.exp(score_b) / (torch.exp(score_b) + torch.exp(bias * score_a)))
    expected = (label * a_wins + (1 - label) * b_wins).mean()
    torch.testing.assert_close(cpl_loss(score_a, score_b, label, bias), expected)
    # lambda = 1: the Bradley-Terry cross-entropy on the score difference
    torch.testing.assert_close(cpl_loss(score_a, score_b, label, 1.0),
                               F.binary_cross_entropy_with_logits(score_a - score_b, label))
    # stable for large scores
    assert torch.isfinite(cpl_loss(torch.tensor([-500.0]), torch.tensor([500.0]), torch.tensor([1.0]), 0.5))


def test_policy_keys_skip_text_and_images():
    goal = spaces.Dict({"observation": spaces.Box(-1, 1, (3,)), "achieved_goal": spaces.Box(-1, 1, (2,)),
                        "desired_goal": spaces.Box(-1, 1, (2,))})
    assert policy_keys(goal) == ["observation", "desired_goal"]
    bandit = spaces.Dict({"text": spaces.Text(10), "utterance": spaces.Box(-1, 1, (8,)),
                          "features": spaces.Box(-1, 1, (3, 8))})
    assert policy_keys(bandit) == ["features", "utterance"]


def toy_pairs(num: int, length: int, rng: np.random.Generator) -> dict:
    """States s ~ U[-1, 1]^2; segment a acts +0.5 + noise, b acts -0.5 + noise; a is preferred in 90 % of pairs."""
    obs_a, obs_b = rng.uniform(-1, 1, (num, length, 2)), rng.uniform(-1, 1, (num, length, 2))
    action_a = 0.5 + 0.2 * rng.standard_normal((num, length, 1))
    action_b = -0.5 + 0.2 * rng.standard_normal((num, length, 1))
    label = (rng.random(num) < 0.9).astype(np.float32)
    return {"obs_a": obs_a, "obs_b": obs_b, "action_a": action_a, "action_b": action_b, "label": label}


@pytest.mark.parametrize("sft", [False, True])
def test_learns_to_prefer_the_preferred_segments(sft):
    torch.manual_seed(0)
    agent = CPLAgent(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (1,)), CPLConfig(sft=sft, lr=1e-3, hidden=[32]), 1, 10, CPU)
    agent.set_dataset(toy_pairs(256, 5, np.random.default_rng(0)))
    test = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in toy_pairs(128, 5, np.random.default_rng(1)).items()}
    before = agent.segment_log_probs(test["obs_a"], test["action_a"]).sum(1) - agent.segment_log_probs(test["obs_b"], test["action_b"]).sum(1)
    for _ in range(150):
        agent.update()
    with torch.no_grad():
        after = agent.segment_log_probs(test["obs_a"], test["action_a"]).sum(1) - agent.segment_log_probs(test["obs_b"], test["action_b"]).sum(1)
    assert (after > 0).float().mean() > 0.95 and after.mean() > before.mean() + 1.0
    assert agent.act(torch.zeros(4, 2), deterministic=True).mean() > 0.2


def test_sft_clones_only_the_preferred_segment():
    agent = CPLAgent(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (1,)), CPLConfig(sft=True, norm_obs=False), 1, 10, CPU)
    batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in toy_pairs(8, 3, np.random.default_rng(0)).items()}
    batch["label"] = torch.tensor([1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.0, 1.0])
    with torch.no_grad():
        lp_a = agent.segment_log_probs(batch["obs_a"], batch["action_a"]).mean(1)
        lp_b = agent.segment_log_probs(batch["obs_b"], batch["action_b"]).mean(1)
    decided = batch["label"] != 0.5
    expected = -torch.where(batch["label"] > 0.5, lp_a, lp_b)[decided].mean()
    torch.testing.assert_close(agent.update_on(batch)["bc_loss"], expected)


def test_discrete_bandit_with_feature_views_beats_random():
    """One-step segments of a K=4 bandit whose reward is feature 0 of the chosen option (text games' `features`)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    space = spaces.Dict({"features": spaces.Box(-1, 1, (4, 3)), "text": spaces.Text(20)})
    agent = make_agent("cpl", {"hidden": [64], "lr": 1e-3, "alpha": 1.0}, space, spaces.Discrete(4), 1, 1, CPU)
    n = 2000
    feats_a, feats_b = rng.uniform(-1, 1, (n, 1, 4, 3)), rng.uniform(-1, 1, (n, 1, 4, 3))
    act_a, act_b = rng.integers(0, 4, (n, 1)), rng.integers(0, 4, (n, 1))
    reward = lambda f, a: np.take_along_axis(f[:, 0, :, 0], a, 1)[:, 0]  # noqa: E731
    label = (reward(feats_a, act_a) > reward(feats_b, act_b)).astype(np.float32)
    agent.set_dataset({"obs_a.features": feats_a, "obs_b.features": feats_b, "action_a": act_a, "action_b": act_b,
                       "label": label})
    for _ in range(400):
        agent.update()
    probe = torch.as_tensor(rng.uniform(-1, 1, (500, 4, 3)), dtype=torch.float32)
    chosen = agent.act({"features": probe}, deterministic=True)
    best = probe[:, :, 0].argmax(1)
    assert (chosen == best).float().mean() > 0.6  # random: 0.25


def test_dataset_round_trip_and_errors(tmp_path):
    data = toy_pairs(6, 4, np.random.default_rng(0))
    path = save_preference_dataset(tmp_path / "prefs", {"observation": data["obs_a"]}, data["action_a"],
                                   {"observation": data["obs_b"]}, data["action_b"], data["label"],
                                   return_a=np.zeros(6))
    loaded = load_preference_dataset(path)
    assert loaded["obs_a.observation"].shape == (6, 4, 2) and loaded["label"].dtype == np.float32
    np.savez(tmp_path / "bad.npz", action_a=data["action_a"], label=data["label"])
    with pytest.raises(PreferenceDatasetError, match="lacks"):
        load_preference_dataset(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="make_preferences"):
        load_preference_dataset(tmp_path / "missing.npz")


def test_checkpoint_round_trip_and_bias_validation():
    agent = CPLAgent(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (1,)), CPLConfig(), 1, 10, CPU)
    agent.set_dataset(toy_pairs(32, 3, np.random.default_rng(0)))
    for _ in range(3):
        agent.update()
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    restored = CPLAgent(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (1,)), CPLConfig(), 1, 10, CPU)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    probe = torch.randn(5, 2)
    torch.testing.assert_close(restored.act(probe, deterministic=True), agent.act(probe, deterministic=True))
    with pytest.raises(ValueError, match="bias"):
        CPLConfig(bias=0.0)


FRUITS = ["apple", "banana", "cherry", "grape", "mango", "pear"]
TOOLS = ["hammer", "wrench", "saw", "drill", "screwdriver", "pliers"]
TEXT_SPACE = spaces.Dict({"text": spaces.Text(200), "options": spaces.Text(200), "hint": spaces.Box(0, 1, (1,))})


def fruit_step(rng: np.random.Generator) -> tuple[str, str, int]:
    """A 'hand me something to eat' prompt, options (one fruit, two tools, shuffled), the fruit's index."""
    items = [rng.choice(FRUITS), *rng.choice(TOOLS, 2, replace=False)]
    order = rng.permutation(3)
    options = "\n".join(f"({i}) the {items[j]}" for i, j in enumerate(order))
    return "Please hand me something to eat.\n" + options, options, int(np.argmin(order))


def test_text_policy_learns_which_option_the_text_asks_for():
    """Pairs of one-step segments: picking the fruit is preferred over picking a tool. Random picks it 1/3."""
    rng = np.random.default_rng(0)
    pairs = 200
    texts, options, fruit = zip(*(fruit_step(rng) for _ in range(pairs)))
    tool = [(f + 1 + rng.integers(2)) % 3 for f in fruit]
    a_first = rng.random(pairs) < 0.5
    obs = {"text": np.array(texts)[:, None], "options": np.array(options)[:, None], "hint": rng.random((pairs, 1, 1))}
    data = {"obs_a.text": obs["text"], "obs_a.options": obs["options"], "obs_a.hint": obs["hint"],
            "obs_b.text": obs["text"], "obs_b.options": obs["options"], "obs_b.hint": obs["hint"],
            "action_a": np.where(a_first, fruit, tool)[:, None], "action_b": np.where(a_first, tool, fruit)[:, None],
            "label": a_first.astype(np.float32)}
    torch.manual_seed(0)
    agent = CPLAgent(TEXT_SPACE, spaces.Discrete(3), CPLConfig(text_encoder="minilm", lr=1e-3, batch_size=32), 1, 1, CPU)
    agent.set_dataset(data)
    assert agent.data["obs_a"]["options"].shape == (pairs, 1, 3, 384)
    for _ in range(150):
        agent.update()
    probe = [fruit_step(np.random.default_rng(seed)) for seed in range(100, 400)]
    obs = {"text": [p[0] for p in probe], "options": [p[1] for p in probe], "hint": torch.rand(len(probe), 1)}
    picked = agent.act(obs, deterministic=True)
    assert (picked == torch.tensor([p[2] for p in probe])).float().mean() > 0.9
    with pytest.raises(ValueError, match="text observations"):
        agent.set_dataset({k: v for k, v in data.items() if "text" not in k and "options" not in k})
