"""scripts.train refuses bad run settings before any work (types, ranges, paths), resume never creates anything at a
path that is not a run, and a corrupt latest.pt falls back to the newest intact step checkpoint."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agents import make_agent_config
from agents.checkpoint import CheckpointError
from scripts.cli import check_run_config
from scripts.run_log import latest_checkpoint, write_checkpoint

CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf"
ROOT = CONF.parents[1]


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("override, expected", [
    ("seed=abc", "seed='abc' must be an integer >= 0"), ("eval_every=0", "eval_every=0 must be an integer > 0"),
    ("total_env_steps=-5", "total_env_steps=-5 must be an integer > 0"),
    ("checkpoint_every=0", "checkpoint_every=0 must be an integer > 0"),
    ("time_limit_s=0", "time_limit_s=0 must be a number > 0 or null"), ("eval_episodes=2.5", "eval_episodes=2.5"),
    ("eval_at_start=maybe", "eval_at_start='maybe' must be true or false"), ("progress=1", "progress=1 must be true or false"),
    ("env.num_envs=abc", "env.num_envs='abc' must be an integer > 0"),
    ("env.max_episode_steps=0", "env.max_episode_steps=0 must be an integer > 0 or null"),
])
def test_run_keys_of_the_wrong_type_or_range_are_refused(override, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        check_run_config(config(override))
    check_run_config(config())  # the defaults pass


@pytest.mark.parametrize("overrides, expected", [
    (["reward=preference", "reward.hidden_dim=-1"], "reward.hidden_dim=-1 must be an integer > 0"),  # a torch traceback
    (["reward=preference", "reward.online.queries=0"], "reward.online.queries=0 must be an integer > 0"),
    (["reward=preference", "reward.online.teacher.error_rate=-0.1"], "reward.online.teacher.error_rate=-0.1 must be"),
    (["reward=language", "reward.gamma=-1"], "reward.gamma=-1 must be a number > 0 or null"),
])
def test_reward_options_of_the_wrong_type_or_range_are_refused(overrides, expected):
    with pytest.raises(ValueError, match=expected):
        check_run_config(config(*overrides))
    check_run_config(config(overrides[0]))  # the reward's defaults pass


@pytest.mark.parametrize("agent, option, value, expected", [
    ("crl", "batch_size", 0, "agent.batch_size=0 must be a number > 0"),
    ("ppo", "lr", -1e-3, "agent.lr=-0.001 must be a number > 0"), ("curl", "discount", 1.5, "in (0, 1]"),
    ("sb3_sac", "gradient_steps", 0, "agent.gradient_steps=0"), ("crl", "hidden", [256, 0], "positive layer widths"),
    ("ppo", "clip_coef", -1, "agent.clip_coef=-1 must be a number > 0"),  # these three were accepted
    ("ppo", "ent_coef", "abc", "agent.ent_coef='abc' must be a number >= 0 (agent=ppo)"),
    ("sb3_sac", "ent_coef", "autox", "agent.ent_coef='autox' must be a number >= 0, auto or auto_<initial value>"),
])
def test_agent_options_out_of_range_are_refused_before_anything_is_built(agent, option, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        make_agent_config(agent, {option: value})
    assert make_agent_config("sb3_sac", {"gradient_steps": -1, "ent_coef": "auto"}).gradient_steps == -1
    assert make_agent_config("sb3_tqc", {"ent_coef": "auto_0.1"}).ent_coef == "auto_0.1"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "scripts.train", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path):
    missing = tmp_path / "no_such_run"
    result = cli(f"resume={missing}")
    assert result.returncode == 2 and "is not a run directory" in result.stderr and not missing.exists()
    result = cli("hydra.run.dir=/proc/forbidden/run", "total_env_steps=10")
    assert result.returncode == 2 and "hydra.run.dir=/proc/forbidden/run cannot be created or written" in result.stderr
    run = tmp_path / "run"
    result = cli("seed=abc", "agent.batch_size=0", f"hydra.run.dir={run}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: seed='abc' must be an integer >= 0"
    assert not (run / "config.yaml").exists() and not (run / "metrics.csv").exists()
    assert not run.exists()  # nor the run directory Hydra made for it (no .hydra/, no empty log)


class Tiny:
    def __init__(self, value):
        self.value = value

    def state_dict(self):
        return {"w": torch.full((2,), float(self.value))}


def test_resume_falls_back_to_the_newest_intact_checkpoint_and_clears_stale_temp_files(tmp_path):
    for step in (100, 200):
        write_checkpoint(tmp_path, Tiny(step), step, 1.0, "agent: {name: crl}\n")
    folder = tmp_path / "checkpoints"
    (folder / "latest.pt").write_bytes(b"truncated by kill -9")
    stale = folder / ".step_300.pt.abc123.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    with pytest.warns(UserWarning, match=r"resuming from .*step_200.pt: checkpoint .*latest.pt is corrupt"):
        state = latest_checkpoint(tmp_path)
    assert state["env_steps"] == 200 and not stale.exists()
    (folder / "step_200.pt").write_bytes(b"also bad")
    with pytest.warns(UserWarning, match="step_100.pt"):
        assert latest_checkpoint(tmp_path)["env_steps"] == 100
    for path in folder.glob("*.pt"):
        path.unlink()
    with pytest.raises(CheckpointError, match="no usable checkpoint in"):
        latest_checkpoint(tmp_path)


@pytest.mark.parametrize("old, new", [("gamma", "discount"), ("init_steps", "warmup_steps"),
                                      ("learning_starts", "warmup_steps")])
def test_old_option_names_are_refused_with_the_new_one(old, new):
    from omegaconf import OmegaConf

    from scripts.cli import unknown_key_message

    with pytest.raises(ValueError, match=f"agent.{old} is now agent.{new}"):
        make_agent_config("ppo", {old: 0.9})
    assert unknown_key_message(OmegaConf.create({"agent": {"discount": 0.9}}), f"agent.{old}") == (
        f"agent.{old} is now agent.{new} (one name per concept across agents)")


def test_tuned_settings_apply_to_their_pair_only_and_yield_to_the_cli():
    tuned = config("agent=crl", "env=push").agent
    assert tuned.actor_command_goals == 1.0 and tuned.goal_motion_share == 0.5
    assert config("agent=crl", "env=reach").agent.actor_command_goals == 0.0
    assert config("agent=crl", "env=push", "~tuned").agent.actor_command_goals == 0.0
    assert config("agent=crl", "env=push", "agent.goal_motion_share=0.25").agent.goal_motion_share == 0.25
    # the goal space is the env config's, whichever agent runs
    assert config("agent=sb3_sac", "env=push").env.kwargs.goal_space == config("agent=crl", "env=push").env.kwargs.goal_space


def test_an_agent_option_naming_env_coordinates_points_at_the_env_goal_space():
    from scripts.cli import unknown_key_message

    message = unknown_key_message(config("agent=crl", "env=push"), "agent.goal_observation_indices")
    assert "no longer exists" in message and "env.kwargs.goal_space=object|object_and_effector|push_behind" in message


def test_every_tuned_file_names_an_agent_env_pair_and_valid_agent_options():
    agents, envs = ({p.stem for p in (CONF / group).glob("*.yaml")} for group in ("agent", "env"))
    files = sorted((CONF / "tuned").glob("*.yaml"))
    assert files
    for path in files:
        pairs = [(a, e) for a in agents for e in envs if path.stem == f"{a}_{e}"]
        assert len(pairs) == 1, f"{path.name} names no agent_env pair"
        cfg = config(f"agent={pairs[0][0]}", f"env={pairs[0][1]}")
        options = {k: v for k, v in OmegaConf.to_container(cfg.agent).items() if k != "name"}
        make_agent_config(pairs[0][0], options)  # raises on an unknown or out-of-range key


def test_tuned_settings_are_announced_only_where_a_tuned_file_exists():
    from scripts.train import tuned_file

    assert tuned_file("crl_push") == CONF / "tuned" / "crl_push.yaml"
    assert tuned_file("crl_reach") is None and tuned_file(None) is None  # Hydra names the choice for every pair
