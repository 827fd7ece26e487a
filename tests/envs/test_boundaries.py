"""What every env refuses at its boundary (bad actions, before any state changes), which envs are GoalEnvs, SB3's
check_env on every numeric id, and async vector envs that start after this process rendered."""

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CRLAB_IDS = sorted(i for i in gymnasium.registry if i.startswith("crlab/"))
TEXT_IDS = ("crlab/FlightPreference-v0", "crlab/Negotiation-v0", "crlab/InstructionFeedback-v0")


@pytest.mark.parametrize("game", TEXT_IDS)
def test_text_games_refuse_invalid_choices_and_keep_their_state(game):
    env = gymnasium.make(game).unwrapped
    twin = gymnasium.make(game).unwrapped
    env.reset(seed=0)
    twin.reset(seed=0)
    n = env.action_space.n
    for bad in (-1, 3.5, n, np.nan, "a"):
        with pytest.raises(ValueError, match=r"(not a valid choice: actions are integers 0\.\.|not finite|must be numbers)"):
            env.step(bad)
    obs, reward, terminated, _, info = env.step(np.int64(1))  # the game goes on as if nothing bad was sent
    expected = twin.step(1)
    assert reward == expected[1] and terminated == expected[2]
    assert all(np.array_equal(obs[k], expected[0][k]) for k in obs)


def test_a_nan_action_in_one_copy_is_refused_and_touches_no_copy():
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=3)
    twin = gymnasium.make_vec("crlab/Reach-v0", num_envs=3)
    vec.reset(seed=0)
    twin.reset(seed=0)
    actions = np.full((3, 2), 0.5, np.float32)
    bad = actions.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"actions of copies \[1\] are not finite"):
        vec.step(bad)
    with pytest.raises(ValueError, match=r"actions have shape \(3, 1\); this env takes \(3, 2\)"):
        vec.step(actions[:, :1])
    with pytest.raises(ValueError, match=r"actions have shape \(2,\); this env takes \(3, 2\)"):
        vec.step(actions[0])  # no silent broadcast
    obs, *_ = vec.step(actions)
    expected, *_ = twin.step(actions)
    np.testing.assert_array_equal(obs["observation"], expected["observation"])


def test_single_env_action_shape_is_exact():
    env = gymnasium.make("crlab/Push-v0")
    env.reset(seed=0)
    for bad in (np.zeros(1), 0.5, np.zeros((1, 2))):
        with pytest.raises(ValueError, match=r"action has shape .*; this env takes \(2,\)"):
            env.step(bad)


def test_only_goal_envs_have_compute_reward():
    for env_id in CRLAB_IDS:
        base = gymnasium.make(env_id).unwrapped
        space = base.observation_space
        goal = isinstance(space, gymnasium.spaces.Dict) and {"achieved_goal", "desired_goal"} <= set(space.spaces)
        assert hasattr(base, "compute_reward") == goal, env_id
    with pytest.raises(AttributeError, match="is not a goal env"):
        gymnasium.make("crlab/DMC-cartpole-swingup-v0").unwrapped.compute_reward


@pytest.mark.parametrize("env_id", [i for i in CRLAB_IDS if i not in TEXT_IDS])
def test_sb3_check_env_passes(env_id):
    """Text games are left out: SB3 has no Text spaces. Goal envs are checked unwrapped (gymnasium 1.x wrappers do
    not forward compute_reward, which SB3's checker calls on the object it is given)."""
    from stable_baselines3.common.env_checker import check_env

    env = gymnasium.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped if hasattr(env.unwrapped, "compute_reward") else env, warn=False)


ASYNC_AFTER_RENDER = """
import gymnasium, envs
if __name__ == "__main__":
    single = gymnasium.make("crlab/Reach-v0", render_mode="rgb_array")
    single.reset(seed=0)
    single.render()  # this process now holds an EGL context
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, vectorization_mode="async", obs_type="pixels", image_size=32)
    obs, _ = vec.reset(seed=0)
    vec.step(vec.action_space.sample())
    vec.close()
    print("async ok", obs["pixels"].shape)
"""


def test_async_vector_env_after_rendering_does_not_hang(tmp_path):
    script = tmp_path / "async_after_render.py"
    script.write_text(ASYNC_AFTER_RENDER)
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "async ok (2, 3, 32, 32)" in result.stdout


TORCH_COMPILER_AFTER_ENV = """
import sys
import gymnasium
import envs
env = gymnasium.make(sys.argv[1], render_mode="rgb_array")
env.reset(seed=0)
env.render()
import torch._dynamo  # what an optimizer's constructor imports lazily; it loads triton's LLVM
print("dynamo ok")
"""


@pytest.mark.parametrize("env_id", ["crlab/OGBenchCubeSingle-v0", "crlab/DMC-cartpole-swingup-v0", "crlab/Push-v0"])
def test_torch_compiler_loads_after_a_rendering_env(tmp_path, env_id):
    """dm_control opens a Mesa EGL display when imported; triton loaded after Mesa's LLVM segfaulted the process
    (scripts.train agent=crl env=ogbench_cube_single, 2026-12-02). A fresh process, as a user's script would be."""
    script = tmp_path / "compiler_after_env.py"
    script.write_text(TORCH_COMPILER_AFTER_ENV)
    result = subprocess.run([sys.executable, str(script), env_id], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and "dynamo ok" in result.stdout, (result.returncode, result.stderr[-2000:])


# Every id is pickled, deep-copied after render() and fuzzed with adversarial actions (single and vector forms) in
# one process by tests/envs/test_soak.py.


def test_next_step_autoreset_works_with_gymnasiums_vector_wrappers():
    """`autoreset_mode="next_step"`: an ended copy shows its last observation, the next step resets it (reward 0,
    info masked out); gymnasium's wrappers that refuse same-step autoreset accept it. Default stays same-step, and
    those wrappers say, in crlab's words, how to ask for next-step (docs/notes/autoreset.md)."""
    from gymnasium.wrappers.vector import FlattenObservation, NormalizeObservation, RecordEpisodeStatistics

    for wrapper in (FlattenObservation, NormalizeObservation):
        with pytest.raises(ValueError, match=r"^this crlab vector env autoresets in the same step .*autoreset_mode=\"next_step\"\)$"):
            wrapper(gymnasium.make_vec("crlab/Reach-v0", num_envs=2))
    RecordEpisodeStatistics(gymnasium.make_vec("crlab/Reach-v0", num_envs=2))  # handles same-step itself
    vec = RecordEpisodeStatistics(FlattenObservation(
        gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=3, autoreset_mode="next_step")))
    first, _ = vec.reset(seed=0)
    actions = np.full((2, 2), 0.3, np.float32)
    for _ in range(2):
        vec.step(actions)
    last, reward, _, truncated, info = vec.step(actions)
    assert truncated.all() and "episode" in info and "final_obs" not in info and info["_is_success"].all()
    restart, reward, terminated, truncated, info = vec.step(actions)
    assert (reward == 0).all() and not terminated.any() and not truncated.any() and not info["_is_success"].any()
    assert not np.allclose(restart, last)
    fresh = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, autoreset_mode="next_step")
    assert fresh.metadata["autoreset_mode"].name == "NEXT_STEP"
    with pytest.raises(ValueError, match=r"autoreset_mode='sometimes' is not one of \['same_step', 'next_step'\]"):
        gymnasium.make_vec("crlab/Reach-v0", num_envs=2, autoreset_mode="sometimes")


def test_gymnasiums_record_video_works(tmp_path):
    """gymnasium's RecordVideo (and CleanRL's --capture-video) need moviepy: it is in the pinned stack."""
    from gymnasium.wrappers import RecordVideo

    env = RecordVideo(gymnasium.make("crlab/Reach-v0", render_mode="rgb_array", width=64, height=64), str(tmp_path),
                      episode_trigger=lambda episode: True)
    env.reset(seed=0)
    for _ in range(50):
        env.step(env.action_space.sample())
    env.close()
    assert [p.suffix for p in tmp_path.iterdir()] == [".mp4"]


def test_mujoco_log_is_not_tracked():
    tracked = subprocess.run(["git", "ls-files", "MUJOCO_LOG.TXT"], cwd=ROOT, capture_output=True, text=True).stdout
    ignored = subprocess.run(["git", "check-ignore", "MUJOCO_LOG.TXT"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked == "" and ignored.strip() == "MUJOCO_LOG.TXT"
