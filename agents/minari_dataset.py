"""Goal datasets in Farama's Minari format, beside the `.npz` layout of agents.goal_dataset.

A Minari dataset is named by its id, `namespace/name-vN` (e.g. `crlab/push-noisy-v0`), and lives under the local
Minari root: `$MINARI_DATASETS_PATH/<id>/data/` (default `~/.minari/datasets/`). crlab writes it for
`python -m scripts.make_dataset ... out=minari:ID` and reads it for `agent.dataset=minari:ID`: the `minari:` prefix
marks an id, anything else is a file path. Reading never downloads: an id that is not under the root is an error.
crlab writes Minari's `arrow` storage (pyarrow); reading Minari's `hdf5` storage needs h5py as well.

Minari stores one episode at a time with one more observation than actions; crlab's layout is one row per step:
    minari episode                       crlab rows of that episode (T steps)
    observations["observation"] (T+1, S)    observations = [:-1], next_observations = [1:]
    observations["achieved_goal"] (T+1, G)  achieved_goals = [:-1], next_achieved_goals = [1:]
    actions (T, A)                          actions
    terminations | truncations (T,)         terminals: True at the episode's last step only
Observations must be a GoalEnv Dict (`observation`, `achieved_goal`, `desired_goal`, each a Box). crlab's agents
pick goals in hindsight, so reading drops `desired_goal` and `rewards`; writing gives each episode its last
achieved goal as `desired_goal`, rewards 0 (recompute them with the env's `compute_reward` where needed) and a
truncation at its last step. A crlab dataset converts only if its rows chain within each episode (next_observations[t]
== observations[t + 1], as `scripts.make_dataset` writes them) and it ends with a complete episode, so the round trip
is exact; the collection settings (env_id, policy, noise, seed, episodes) travel in the dataset's metadata.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import gymnasium
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_dataset import DATASET_ID_RE

from agents.goal_dataset import STEP_FIELDS, GoalDatasetError, episode_bounds, load_goal_dataset

MINARI_PREFIX = "minari:"  # agent.dataset=minari:ID, make_dataset out=minari:ID
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
META_KEY = "crlab"  # the Minari metadata entry that holds crlab's collection settings


def minari_id(source: str | Path) -> str | None:
    """The dataset id of a `minari:ID` source (checked against Minari's `namespace/name-vN` form); None for a path."""
    text = str(source)
    if not text.startswith(MINARI_PREFIX):
        return None
    return check_dataset_id(text[len(MINARI_PREFIX):])


def check_dataset_id(dataset_id: str) -> str:
    """`dataset_id` if it has Minari's form `namespace/name-vN` (the namespace optional, the version not); else ValueError."""
    match = DATASET_ID_RE.fullmatch(dataset_id)
    if not match or match.group("version") is None:
        raise ValueError(f"{dataset_id!r} is not a Minari dataset id: namespace/name-vN (e.g. crlab/push-noisy-v0)")
    return dataset_id


def minari_root() -> Path:
    """The local Minari root, as Minari resolves it: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def read_goal_dataset(source: str | Path) -> dict[str, np.ndarray]:
    """A goal dataset in the STEP_FIELDS layout from `minari:ID` (a local Minari dataset) or a crlab / OGBench file."""
    dataset_id = minari_id(source)
    return load_goal_dataset(source) if dataset_id is None else load_minari_goal_dataset(dataset_id)


def load_minari_goal_dataset(dataset_id: str) -> dict[str, np.ndarray]:
    """The local Minari dataset `dataset_id` (GoalEnv Dict observations) in the STEP_FIELDS layout; never downloads."""
    name = f"Minari dataset {dataset_id}"
    data_path = minari_root() / dataset_id / "data"
    if not (data_path / "metadata.json").is_file():
        raise FileNotFoundError(f"{name} is not in MINARI_DATASETS_PATH={minari_root()} (no {data_path}); crlab makes no "
                                f"downloads: run `minari download {dataset_id}` yourself or write it with "
                                f"python -m scripts.make_dataset out=minari:{dataset_id}")
    try:
        dataset = minari.MinariDataset(data_path)
    except ImportError as err:  # Minari's hdf5 storage needs h5py, which crlab does not pin
        raise GoalDatasetError(f"{name} is unreadable here: {err} (crlab pins Minari's arrow storage: collect with "
                               f"minari.DataCollector(env, data_format='arrow'))") from err
    space = dataset.observation_space
    if not (isinstance(space, gymnasium.spaces.Dict) and set(GOAL_KEYS) <= set(space.spaces)
            and all(isinstance(space[k], gymnasium.spaces.Box) for k in GOAL_KEYS)):
        raise GoalDatasetError(f"{name}: its observation space {space} is not a goal Dict of Boxes {list(GOAL_KEYS)}")
    if not isinstance(dataset.action_space, gymnasium.spaces.Box):
        raise GoalDatasetError(f"{name}: its action space {dataset.action_space} is not a Box")
    episodes = []
    for episode in dataset.iterate_episodes():
        steps = len(episode.actions)
        if steps == 0:
            continue
        obs, goals = episode.observations["observation"], episode.observations["achieved_goal"]
        terminals = np.zeros(steps, dtype=bool)
        terminals[-1] = True  # a Minari episode is whole; DataCollector truncates one cut short by reset
        episodes.append({"observations": obs[:-1], "next_observations": obs[1:], "achieved_goals": goals[:-1],
                         "next_achieved_goals": goals[1:], "actions": episode.actions, "terminals": terminals})
    if not episodes:
        raise GoalDatasetError(f"{name} holds no episode with a step")
    rows = sum(len(e["actions"]) for e in episodes)
    data = {k: np.concatenate([e[k] for e in episodes]) for k in STEP_FIELDS}
    for key in STEP_FIELDS[:-1]:
        data[key] = data[key].astype(np.float32).reshape(rows, -1)
        if not np.isfinite(data[key]).all():
            raise GoalDatasetError(f"{name}: {key} holds NaN or inf")
    meta = dataset.storage.metadata.get(META_KEY) or {}
    data.update({k: np.asarray(v) for k, v in meta.items()})
    data["minari_id"] = np.asarray(dataset_id)
    return data


def new_dataset_folder(dataset_id: str) -> Path:
    """The folder a new Minari dataset `dataset_id` is written to; ValueError if the id is malformed or taken."""
    folder = minari_root() / check_dataset_id(dataset_id)
    if folder.exists():
        raise ValueError(f"Minari dataset {dataset_id} already exists at {folder}: delete it (minari delete {dataset_id}) "
                         f"or raise its version")
    return folder


def save_minari_goal_dataset(dataset_id: str, steps: dict[str, np.ndarray], env_spec: EnvSpec | None = None,
                             **meta: str | float | int) -> Path:
    """Write the STEP_FIELDS arrays of `steps` as the local Minari dataset `dataset_id` (arrow storage), with the
    collection settings `meta` and, where given, the env's spec (a vector constructor registered as a callable, as a
    user's env may, dropped: JSON cannot hold one; crlab's are named by string); returns the dataset's folder.
    Refuses an id that exists and removes what a failed write left."""
    name = f"Minari dataset {dataset_id}"
    folder = new_dataset_folder(dataset_id)
    terminals = np.asarray(steps["terminals"], dtype=bool)
    if not terminals.size or not terminals[-1]:
        raise GoalDatasetError(f"{name}: the steps must end with a complete episode (terminals[-1] True)")
    spec_json = None
    if env_spec is not None:
        if callable(env_spec.vector_entry_point):
            env_spec = dataclasses.replace(env_spec, vector_entry_point=None)
        spec_json = env_spec.to_json()
    arrays = {k: np.asarray(steps[k], dtype=np.float32).reshape(len(terminals), -1) for k in STEP_FIELDS[:-1]}
    inside = ~terminals[:-1]  # rows t whose step t + 1 is in the same episode
    for now, after in (("observations", "next_observations"), ("achieved_goals", "next_achieved_goals")):
        if not np.array_equal(arrays[after][:-1][inside], arrays[now][1:][inside]):
            raise GoalDatasetError(f"{name}: {after}[t] differs from {now}[t + 1] within an episode, which Minari's one "
                                   f"observation list per episode cannot hold")
    box = lambda key: gymnasium.spaces.Box(-np.inf, np.inf, (arrays[key].shape[1],), np.float32)
    observation_space = gymnasium.spaces.Dict({"observation": box("observations"), "achieved_goal": box("achieved_goals"),
                                               "desired_goal": box("achieved_goals")})
    buffers = []
    for index, (start, end) in enumerate(episode_bounds(terminals)):
        goals = np.concatenate([arrays["achieved_goals"][start:end], arrays["next_achieved_goals"][end - 1:end]])
        observations = {"observation": np.concatenate([arrays["observations"][start:end],
                                                       arrays["next_observations"][end - 1:end]]),
                        "achieved_goal": goals, "desired_goal": np.repeat(goals[-1:], len(goals), 0)}
        truncations = np.zeros(end - start, dtype=bool)
        truncations[-1] = True
        buffers.append(EpisodeBuffer(id=index, observations=observations, actions=arrays["actions"][start:end],
                                     rewards=np.zeros(end - start), terminations=np.zeros(end - start, dtype=bool),
                                     truncations=truncations))
    settings = " ".join(f"{k}={v}" for k, v in meta.items())
    try:
        with warnings.catch_warnings():  # Minari's reminders of unset optional metadata (author, code_permalink, ...)
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            dataset = minari.create_dataset_from_buffers(
                dataset_id, buffers, observation_space=observation_space, action_space=box("actions"),
                algorithm_name=str(meta.get("policy", "unknown")), data_format="arrow",
                description=f"crlab goal dataset (scripts.make_dataset {settings}); desired_goal is each episode's last "
                            f"achieved goal and rewards are 0: goals are chosen in hindsight")
        extra = {META_KEY: {k: v.item() if isinstance(v, np.generic) else v for k, v in meta.items()}}
        dataset.storage.update_metadata(extra if spec_json is None else {**extra, "env_spec": spec_json})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder
