import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests use tiny models on a 2-core machine, where a second intra-op thread only contends; use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def sb3_log_folder(tmp_path_factory):
    """SB3's learn() without a logger makes a tempdir/SB3-<time> folder each call; the tests that drive an SB3 model
    directly (as a user's script would) put theirs in pytest's temp folder instead."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))


# The quick loop, `pytest -m "not slow"`, leaves out what trains through the run engine, starts subprocesses or
# walks every env id: these files whole, and the single tests below (each a few seconds or more).
SLOW_FILES = {
    "envs/test_boundaries.py", "envs/test_dmc.py", "envs/test_gl_fork.py", "envs/test_mjx_reach.py",
    "envs/test_ogbench_manip.py", "envs/test_soak.py", "envs/test_suites.py", "agents/test_compile.py",
    "scripts/test_eval_rewards.py", "scripts/test_make_dataset.py",
    "scripts/test_make_dataset_locomaze.py", "scripts/test_make_preferences.py", "scripts/test_record.py",
    "scripts/test_refused_inputs.py", "scripts/test_sweep.py", "scripts/test_train.py", "scripts/test_train_reward.py",
    "test_docs.py",
}
SLOW_TESTS = {
    "test_cli_errors_are_one_line_and_write_nothing", "test_the_cli_refuses_an_unknown_study_or_run_before_any_work",
    "test_a_tiny_study_runs_end_to_end_writes_records_and_its_report", "test_learns_a_pixel_bandit",
    "test_contrastive_accuracy_rises_on_a_fixed_batch", "test_sb3_sac_her_runs", "test_short_run_writes_the_run_artifacts",
    "test_a_run_stopped_by_its_time_limit_ends_with_an_evaluation_and_a_checkpoint", "test_sb3_ppo_learns_the_negotiation_game",
    "test_cli_reward_file_errors_are_one_line_exit_2", "test_learns_reach_dense_reward_online",
    "test_online_preference_run_relabels_the_replay_buffer_each_session", "test_exit_after_rendering_mujoco_and_dm_control_is_clean",
    "test_tiny_run_saves_a_checkpoint_that_loads_as_a_clip_reward", "test_report_cli",
    "test_a_resumed_her_run_refills_its_buffer_before_it_trains",
}


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests (above); run the MuJoCo XLA tests last: they start JAX, whose thread pools make every later
    os.fork() (the CLI tests' subprocesses) unsafe. In one process the soak walk's test runs late (its walk runs in the
    background meanwhile); with worker processes (pyproject's `-n`) it walks where it runs, first, as the longest."""
    tests = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if os.path.relpath(str(item.path), tests) in SLOW_FILES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    soak = -1 if os.environ.get("PYTEST_XDIST_WORKER") else 1
    items.sort(key=lambda item: (2 if "test_mjx_reach" in item.nodeid else soak if SOAK_TEST in item.nodeid else 0))


SOAK_TEST = "test_soak.py::test_every_env_id_in_one_process"


def pytest_collection_finish(session):
    """In one process (`-n 0`), the soak walk (every env id in one process, several minutes) starts as soon as the
    session selects it, in its own process beside the other tests, which mostly leave the second core idle; its test
    collects the result. Worker processes keep both cores busy already: each would start a walk of its own."""
    if not os.environ.get("PYTEST_XDIST_WORKER") and any(SOAK_TEST in item.nodeid for item in session.items):
        from tests.envs.test_soak import start_in_background  # noqa: PLC0415

        start_in_background(Path(tempfile.mkdtemp(prefix="crlab-soak-")))


def pytest_sessionfinish(session, exitstatus):
    if "tests.envs.test_soak" in sys.modules:
        sys.modules["tests.envs.test_soak"].stop_background()
