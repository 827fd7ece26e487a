"""`python -m scripts.eval_rewards`: the four outputs on a recorded rollout folder, and clear errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401  (registers crlab/Reach-v0)
from envs.recorder import RolloutRecorder
from rewards.preference import PreferenceRewardModel
from scripts.eval_rewards import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    """Two rollout files of two dense-reward Reach episodes each, and a small saved preference model."""
    folder = tmp_path_factory.mktemp("rollouts")
    for k in range(2):
        env = RolloutRecorder(gymnasium.make("crlab/Reach-v0", render_mode="rgb_array", width=32, height=32,
                                             reward_type="dense"))
        env.action_space.seed(k)
        for episode in range(2):
            env.reset(seed=10 * k + episode)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
        env.save(folder / "rollouts" / f"episodes_{k}")
    model = PreferenceRewardModel.from_spaces(env.observation_space, env.action_space, ensemble_size=2, hidden_dim=16)
    model.save(folder / "rm.safetensors")
    return folder


def test_writes_report_table_plot_and_video(rollouts, tmp_path, capsys):
    out = tmp_path / "report"
    main([f"rollouts={rollouts / 'rollouts'}", "reward=preference,language", f"preference.path={rollouts / 'rm.safetensors'}",
          "language.shaping=false", f"out={out}", "device=cpu", "env_kwargs.reward_type=dense", "pairs=200"])
    report = json.loads((out / "report.json").read_text())
    assert report["transitions"] == 200 and report["episodes"] == 4 and len(report["rollouts"]) == 2
    assert set(report["rewards"]) == {"env reward", "preference", "language"}
    for name, metrics in report["rewards"].items():
        assert set(metrics) == {"pearson", "spearman", "epic", "preference_accuracy", "success_auroc"}
        assert -1 <= metrics["spearman"] <= 1 and 0 <= metrics["epic"] <= 1 and 0 <= metrics["preference_accuracy"] <= 1
    assert report["rewards"]["env reward"]["epic"] == pytest.approx(0.0, abs=1e-6)
    table = (out / "report.md").read_text()
    assert "| preference |" in table and "EPIC distance" in table
    assert (out / "rewards.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import imageio.v2 as imageio

    video = imageio.mimread(out / "rewards.mp4", memtest=False)
    assert len(video) == 100 and video[0].shape[1] >= 320 and video[0].shape[0] > video[0].shape[1]  # frame + panel
    assert "| language |" in capsys.readouterr().out


def test_epic_of_the_pure_shaping_language_reward_is_undefined(rollouts, tmp_path, capsys):
    """Language shaping γΦ(s') − Φ(s) is EPIC-equivalent to zero: its distance is "undefined" with the reason (it
    was a seed-independent 0.686 from float rounding before)."""
    out = tmp_path / "report"
    main([f"rollouts={rollouts / 'rollouts'}", "reward=language", f"out={out}", "device=cpu",
          "env_kwargs.reward_type=dense", "pairs=50", "video_episodes=0"])
    report = json.loads((out / "report.json").read_text())
    assert report["rewards"]["language"]["epic"] == "undefined"
    assert any("language: EPIC distance undefined" in n and "potential shaping" in n for n in report["notes"])
    assert "epic=undefined" in capsys.readouterr().out
    assert "| undefined |" in (out / "report.md").read_text()


def test_without_env_kwargs_epic_is_left_out_with_a_note(rollouts, tmp_path):
    out = tmp_path / "report"
    main([f"rollouts={rollouts / 'rollouts' / 'episodes_0.npz'}", "reward=preference",
          f"preference.path={rollouts / 'rm.safetensors'}", f"out={out}", "device=cpu", "pairs=50", "video_episodes=1"])
    report = json.loads((out / "report.json").read_text())
    assert report["rewards"]["preference"]["epic"] is None and "reward_type=dense" in report["notes"][0]


@pytest.mark.parametrize(
    "args, expected",
    [(["reward=nope"], "known rewards"), (["reward=preference", "preference.hiden_dim=3"], "Did you mean 'hidden_dim'"),
     (["reward=preference", "pairz=3"], "Did you mean 'pairs'"), (["reward=preference"], "needs a trained model"),
     (["reward=language,preference"], "needs a trained model")],
)
def test_bad_arguments_exit_2_with_a_clear_message(rollouts, capsys, args, expected):
    with pytest.raises(SystemExit) as exit_info:
        main([f"rollouts={rollouts / 'rollouts'}", "device=cpu", *args])
    assert exit_info.value.code == 2
    out = capsys.readouterr()
    assert expected in out.err
    assert out.out == ""  # nothing scored before the refusal (the env reward and language were)


def test_corrupt_or_mismatched_rollout_file_is_named_without_traceback(rollouts, tmp_path, capsys):
    folder = tmp_path / "rollouts"
    folder.mkdir()
    (folder / "a.npz").write_bytes((rollouts / "rollouts" / "episodes_0.npz").read_bytes())
    (folder / "b.npz").write_bytes(b"truncated")
    args = [sys.executable, "-m", "scripts.eval_rewards", f"rollouts={folder}", "reward=preference",
            f"preference.path={rollouts / 'rm.safetensors'}", f"out={tmp_path / 'out'}", "device=cpu"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"rollout file {folder / 'b.npz'} is unreadable" in result.stderr and "Traceback" not in result.stderr
    arrays = dict(np.load(rollouts / "rollouts" / "episodes_1.npz"))
    arrays.pop("obs.desired_goal")
    np.savez(folder / "b.npz", **arrays)
    with pytest.raises(SystemExit) as exit_info:
        main(args[3:])
    assert exit_info.value.code == 2
    assert f"rollout file {folder / 'b.npz'} does not match" in capsys.readouterr().err


def test_language_reward_on_text_game_rollouts_writes_its_report(tmp_path):
    """Text-observation rollouts (a Text entry in the Dict observation) score with reward=language."""
    from omegaconf import OmegaConf

    from scripts.record import record_reference

    env_cfg = OmegaConf.load(ROOT / "scripts" / "conf" / "env" / "instruction_feedback.yaml")
    record_reference(env_cfg, "noisy", 0.5, 6, 0, tmp_path / "rollouts" / "noisy")
    out = tmp_path / "report"
    main([f"rollouts={tmp_path / 'rollouts'}", "reward=language", f"out={out}", "device=cpu", "pairs=20",
          "segment_length=2", "video_episodes=1"])
    report = json.loads((out / "report.json").read_text())
    assert report["env_id"] == "crlab/InstructionFeedback-v0" and "language" in report["rewards"]
    assert -1 <= report["rewards"]["language"]["spearman"] <= 1
