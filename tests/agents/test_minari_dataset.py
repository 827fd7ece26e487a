"""Goal datasets in Minari's format: make_dataset's data round-trip exactly, a dataset made with Minari's own
DataCollector on a crlab env trains offline crl, and nothing is ever downloaded."""

import csv
import importlib.util
import json

import gymnasium
import minari
import numpy as np
import pytest

import envs  # noqa: F401  (registers crlab/ envs)
from agents.goal_dataset import STEP_FIELDS, GoalDatasetError, load_goal_dataset
from agents.minari_dataset import read_goal_dataset, save_minari_goal_dataset
from scripts.engine import train
from scripts.make_dataset import make_dataset
from scripts.run_setup import compose_config

COLLECTOR_NEEDS_JAX = "Minari's DataCollector needs jax (minari[create]; crlab's mjx extra and requirements.lock have it)"


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    refuse = lambda *args, **kwargs: pytest.fail("a download was attempted")
    monkeypatch.setattr(minari.storage.hosting, "download_dataset", refuse)
    monkeypatch.setattr(minari, "download_dataset", refuse)
    return root


def made(out, tmp_path):
    """Three seeded noisy Push episodes through scripts.make_dataset, written to `out`."""
    cfg = compose_config("make_dataset", ["env=push", "policy=noisy", "episodes=3", "num_envs=3", f"out={out}", "progress=false"])
    return make_dataset(cfg)


def test_make_dataset_round_trips_through_minari_exactly(minari_root, tmp_path):
    npz = load_goal_dataset(made(tmp_path / "push.npz", tmp_path))
    folder = made("minari:crlab/push-noisy-v0", tmp_path)
    assert folder == minari_root / "crlab" / "push-noisy-v0"
    back = read_goal_dataset("minari:crlab/push-noisy-v0")
    for key in STEP_FIELDS:
        np.testing.assert_array_equal(back[key], npz[key])
        assert back[key].dtype == npz[key].dtype
    assert {k: back[k].item() for k in ("env_id", "policy", "noise", "seed", "episodes")} == \
           {k: npz[k].item() for k in ("env_id", "policy", "noise", "seed", "episodes")}

    dataset = minari.load_dataset("crlab/push-noisy-v0")  # as a Minari user sees it
    assert dataset.total_episodes == 3 and dataset.total_steps == len(npz["actions"]) == 300
    episode = next(dataset.iterate_episodes())
    assert episode.observations["observation"].shape == (101, 19) and episode.actions.shape == (100, 2)
    np.testing.assert_array_equal(episode.observations["desired_goal"][0], npz["next_achieved_goals"][99])  # hindsight
    assert episode.truncations[-1] and not episode.terminations.any()
    assert dataset.spec.env_spec.id == "crlab/Push-v0" and dataset.spec.env_spec.max_episode_steps == 100

    with pytest.raises(ValueError, match="already exists"):  # refused before collecting
        made("minari:crlab/push-noisy-v0", tmp_path)
    chained = {k: npz[k].copy() for k in STEP_FIELDS}
    chained["next_observations"][0] += 1.0
    with pytest.raises(GoalDatasetError, match=r"next_observations\[t\] differs from observations\[t \+ 1\]"):
        save_minari_goal_dataset("crlab/broken-v0", chained)
    assert not (minari_root / "crlab" / "broken-v0").exists()


def test_data_collector_takes_a_crlab_env_as_made(minari_root):
    """crlab registers its vector constructors by name (envs/vector.py): the spec is JSON, as Minari stores it."""
    pytest.importorskip("jax", reason=COLLECTOR_NEEDS_JAX)
    minari.DataCollector(gymnasium.make("crlab/Reach-v0"), data_format="arrow").close()


def test_a_minari_data_collector_dataset_trains_crl_offline(minari_root, tmp_path):
    pytest.importorskip("jax", reason=COLLECTOR_NEEDS_JAX)
    env = minari.DataCollector(gymnasium.make("crlab/Reach-v0"), data_format="arrow")
    env.action_space.seed(0)
    for episode in range(4):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    dataset = env.create_dataset("crlab/reach-random-v0", algorithm_name="random", author="crlab tests",
                                 author_email="none", code_permalink="tests/agents/test_minari_dataset.py",
                                 description="random actions on crlab/Reach-v0")
    env.close()

    data = read_goal_dataset("minari:crlab/reach-random-v0")
    first = next(dataset.iterate_episodes())
    assert len(data["actions"]) == 200 and data["terminals"].sum() == 4 and data["terminals"][49]
    np.testing.assert_array_equal(data["next_observations"][:50], first.observations["observation"][1:].astype(np.float32))
    np.testing.assert_array_equal(data["achieved_goals"][:50], first.observations["achieved_goal"][:-1].astype(np.float32))

    cfg = compose_config("train", ["agent=crl", "env=reach", "agent.dataset=minari:crlab/reach-random-v0",
                                   "agent.hidden=[32,32]", "agent.batch_size=32", "total_gradient_steps=20", "eval_every=10",
                                   "eval_episodes=2", "video_episodes=0", "progress=false", "device=cpu"])
    run_dir = train(cfg, tmp_path / "run")
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [int(r["gradient_steps"]) for r in csv.DictReader(f)] == [0, 10, 20]


def test_missing_or_unusable_minari_datasets_give_one_line_errors(minari_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not in MINARI_DATASETS_PATH=.*crlab makes no downloads") as err:
        read_goal_dataset("minari:crlab/missing-v0")
    assert "\n" not in str(err.value)
    cfg = compose_config("train", ["agent=crl", "env=reach", "agent.dataset=minari:crlab/missing-v0", "device=cpu"])
    with pytest.raises(FileNotFoundError, match="crlab makes no downloads"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="is not a Minari dataset id: namespace/name-vN"):
        read_goal_dataset("minari:crlab/no-version")

    box = gymnasium.spaces.Box(-1, 1, (2,), np.float32)  # a flat observation space: not a goal Dict
    buffer = minari.data_collector.EpisodeBuffer(observations=np.zeros((3, 2), np.float32), actions=np.zeros((2, 2), np.float32),
                                                 rewards=np.zeros(2), terminations=np.zeros(2, bool), truncations=np.ones(2, bool))
    with pytest.warns(UserWarning):  # Minari's reminders of unset metadata
        minari.create_dataset_from_buffers("crlab/flat-v0", [buffer], observation_space=box, action_space=box, data_format="arrow")
    with pytest.raises(GoalDatasetError, match=r"Minari dataset crlab/flat-v0: its observation space Box.* is not a goal Dict"):
        read_goal_dataset("minari:crlab/flat-v0")

    if importlib.util.find_spec("h5py") is None:  # crlab pins Minari's arrow storage only
        metadata = minari_root / "crlab" / "flat-v0" / "data" / "metadata.json"  # the same dataset, labelled hdf5
        metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "data_format": "hdf5"}))
        with pytest.raises(GoalDatasetError, match=r"unreadable here: h5py is not installed.*data_format='arrow'\)\)$"):
            read_goal_dataset("minari:crlab/flat-v0")
