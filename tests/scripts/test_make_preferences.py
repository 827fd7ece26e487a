"""make_preferences: recording with noisy policies, segments inside episodes, labels from each teacher, CLI, CPL run."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from agents.goal_dataset import save_goal_dataset
from agents.preference_dataset import load_preference_dataset
from envs.recorder import load_rollout
from rewards.evaluation import load_rollouts
from rewards.preference import PreferenceRewardModel
from scripts.make_preferences import goal_dataset_rollouts, make_preferences, sample_segments
from scripts.train import train

CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf"
ROOT = CONF.parents[1]


def prefs_config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("make_preferences", overrides=list(overrides))


@pytest.fixture(scope="module")
def reach_rollouts(tmp_path_factory):
    """24 random-policy episodes of dense-reward reach, recorded by make_preferences, and a gold dataset."""
    folder = tmp_path_factory.mktemp("prefs") / "reach"
    cfg = prefs_config(f"rollouts={folder}", "record.env=reach", "record.env_kwargs={reward_type: dense}",
                       "record.episodes=24", "record.num_envs=8", "pairs=300", "segment_length=10")
    return folder, make_preferences(cfg)


def test_recorded_rollouts_follow_the_recorder_layout(reach_rollouts):
    folder, _ = reach_rollouts
    arrays = load_rollout(folder / "rollouts.npz")
    assert len(arrays["reward"]) == 24 * 50 and arrays["episode"].max() == 23
    assert (np.diff(arrays["episode"]) >= 0).all()
    steps = arrays["step"].reshape(24, 50)
    assert (steps == np.arange(50)).all() and arrays["truncated"].reshape(24, 50)[:, -1].all()
    # next_obs of a step is obs of the next step within an episode (the true final obs at the end)
    np.testing.assert_allclose(arrays["next_obs.observation"][:-1][arrays["step"][1:] > 0],
                               arrays["obs.observation"][1:][arrays["step"][1:] > 0])
    # every row's text describes its s', the episode's last row included (it was "" there)
    assert all(t.startswith(("The green goal", "The fingertip")) for t in arrays["text"]), set(arrays["text"][arrays["step"] == 49])


def test_gold_labels_prefer_the_higher_return(reach_rollouts):
    _, path = reach_rollouts
    data = load_preference_dataset(path)
    assert data["obs_a.observation"].shape == (300, 10, 8) and data["action_b"].shape == (300, 10, 2)
    decided = data["return_a"] != data["return_b"]
    np.testing.assert_array_equal(data["label"][decided], (data["return_a"] > data["return_b"])[decided])
    assert str(data["labeler"]) == "gold" and str(data["env_id"]) == "crlab/Reach-v0"


def test_segments_stay_inside_single_episodes(reach_rollouts):
    folder, _ = reach_rollouts
    data = load_rollouts(folder)
    rows = sample_segments(data, 500, 10, np.random.default_rng(0))
    episode = data.arrays["episode"][rows]
    assert (episode == episode[:, :1]).all() and (np.diff(data.arrays["step"][rows], axis=1) == 1).all()
    with pytest.raises(ValueError, match="segment_length"):
        sample_segments(data, 5, 51, np.random.default_rng(0))


def test_noisy_teacher_and_preference_model_labeler(reach_rollouts, tmp_path):
    folder, _ = reach_rollouts
    noisy = load_preference_dataset(make_preferences(prefs_config(
        f"rollouts={folder}", "pairs=400", "segment_length=10", "error_rate=0.3", f"out={tmp_path / 'noisy'}")))
    agree = ((noisy["return_a"] > noisy["return_b"]) == (noisy["label"] > 0.5)).mean()
    assert 0.55 < agree < 0.85
    # an untrained reward model as the teacher: labels come from its segment returns
    model = PreferenceRewardModel(obs_dim=12, action_dim=2, ensemble_size=1, hidden_dim=8, num_layers=1)
    model.save(tmp_path / "rm.safetensors")
    data = load_preference_dataset(make_preferences(prefs_config(
        f"rollouts={folder}", "labeler=preference", f"model={tmp_path / 'rm.safetensors'}", "pairs=50",
        "segment_length=5", f"out={tmp_path / 'model'}")))
    assert data["label"].shape == (50,) and set(np.unique(data["label"])) <= {0.0, 0.5, 1.0}
    progress = load_preference_dataset(make_preferences(prefs_config(
        f"rollouts={folder}", "gold_score=progress", "pairs=50", "segment_length=5", f"out={tmp_path / 'progress'}")))
    assert progress["label"].shape == (50,)
    with pytest.raises(ValueError, match="frames"):
        make_preferences(prefs_config(f"rollouts={folder}", "labeler=vlm_preference", "pairs=5", "segment_length=2"))


def test_text_bandit_rollouts_keep_numeric_views_and_text(tmp_path):
    cfg = prefs_config(f"rollouts={tmp_path / 'flight'}", "record.env=crlab/FlightPreference-v0", "record.episodes=40",
                       "record.num_envs=8", "pairs=30", "segment_length=1")
    data = load_preference_dataset(make_preferences(cfg))
    assert set(k for k in data if k.startswith("obs_a.")) == {"obs_a.features", "obs_a.utterance", "obs_a.text",
                                                               "obs_a.options"}
    assert data["obs_a.text"].dtype.kind == "U" and data["obs_a.text"].shape == (30, 1)  # no pickled objects
    assert data["obs_a.options"][0, 0].count("\n") == 2  # three option lines
    assert data["action_a"].shape == (30, 1)


def test_cli_and_offline_cpl_run(reach_rollouts, tmp_path):
    _, path = reach_rollouts
    bad = subprocess.run([sys.executable, "-m", "scripts.make_preferences", f"rollouts={tmp_path}/none.npz"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "error:" in bad.stderr
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["progress=false", "device=cpu", "agent=cpl", f"agent.dataset={path}",
                                          "total_gradient_steps=40", "eval_every=20", "checkpoint_every=20",
                                          "eval_episodes=4", "video_episodes=1", "agent.hidden=[32,32]"])
    run_dir = train(cfg, tmp_path / "run")
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [int(r["gradient_steps"]) for r in csv.DictReader(f)] == [0, 20, 40]  # offline: gradient steps
    assert (run_dir / "checkpoints" / "latest.pt").exists() and (run_dir / "videos" / "eval_000000040.mp4").exists()



def test_goal_dataset_segments_get_hindsight_goals_and_progress_labels(tmp_path):
    # two 4-step episodes of a 1-D goal: the first walks 0 -> 4 (its last state achieves 4), the second 0 -> 2 -> 1
    achieved = np.array([0, 1, 2, 3, 0, 1, 2, 2], np.float32)[:, None]
    next_achieved = np.array([1, 2, 3, 4, 1, 2, 2, 1], np.float32)[:, None]
    steps = {"observations": np.c_[achieved, -achieved], "actions": np.ones((8, 1)),
             "next_observations": np.c_[next_achieved, -next_achieved], "achieved_goals": achieved,
             "next_achieved_goals": next_achieved, "terminals": np.array([0, 0, 0, 1, 0, 0, 0, 1], bool)}
    path = save_goal_dataset(tmp_path / "goals.npz", steps, env_id="crlab/Test-v0")
    data = goal_dataset_rollouts(path)
    np.testing.assert_array_equal(data.obs["desired_goal"][:, 0], [4, 4, 4, 4, 1, 1, 1, 1])
    np.testing.assert_allclose(data.arrays["reward"], [-3, -2, -1, 0, 0, -1, -1, 0])  # -|next achieved - goal|
    np.testing.assert_array_equal(data.arrays["step"], [0, 1, 2, 3, 0, 1, 2, 3])
    assert data.arrays["truncated"].tolist() == [False] * 3 + [True] + [False] * 3 + [True]
    out = make_preferences(prefs_config(f"rollouts={path}", "pairs=200", "segment_length=2", "gold_score=progress"))
    prefs = load_preference_dataset(out)
    assert str(prefs["env_id"]) == "crlab/Test-v0" and prefs["obs_a.observation"].shape == (200, 2, 2)

    def gain(side):  # r(last) - r(first) of each window, from where it starts: episode 1 always +1
        start, goal = prefs[f"obs_{side}.achieved_goal"][:, 0, 0], prefs[f"obs_{side}.desired_goal"][:, 0, 0]
        return np.where(goal == 4, 1.0, start - 1)  # episode 2 windows start at 0, 1, 2: gains -1, 0, +1

    decided = gain("a") != gain("b")
    assert decided.sum() > 50
    np.testing.assert_array_equal(prefs["label"][decided], (gain("a") > gain("b"))[decided])


def test_cpl_learns_from_a_goal_dataset_on_its_env(tmp_path):
    from scripts.make_dataset import collect
    from scripts.run_setup import compose_config

    env_cfg = compose_config("make_dataset", ["env=reach"]).env
    path = save_goal_dataset(tmp_path / "reach.npz", collect(env_cfg, "noisy", 0.3, 8, 8, seed=0), env_id=env_cfg.id)
    prefs = make_preferences(prefs_config(f"rollouts={path}", "pairs=100", "segment_length=10", "gold_score=progress"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["progress=false", "device=cpu", "agent=cpl", f"agent.dataset={prefs}",
                                          "total_gradient_steps=20", "eval_every=20", "checkpoint_every=20",
                                          "eval_episodes=4", "video_episodes=0", "agent.hidden=[32,32]"])
    run_dir = train(cfg, tmp_path / "run")  # the dataset's obs keys are reach's: CPL trains and evaluates on it
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [int(r["gradient_steps"]) for r in csv.DictReader(f)] == [0, 20]
