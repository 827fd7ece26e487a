"""Child processes and GL (envs/gl_fork.py): async vector envs never block, whatever was made or rendered before them
in the process; a forked child that would block says so instead. Each case runs as a user's script, in a fresh
process under a timeout."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The hang in small: an async env made before this process holds any GL context (multiprocessing then fixed
# its start method to fork), then a render, then an async env whose workers render (here pixel observations; the
# walk met it as DMC's async form right after AntMaze's).
ASYNC_BEFORE_AND_AFTER_RENDER = """
import gymnasium, envs
if __name__ == "__main__":
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, vectorization_mode="async")
    vec.reset(seed=0)
    vec.close()
    single = gymnasium.make("crlab/Reach-v0", render_mode="rgb_array")
    single.reset(seed=0)
    single.render()
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, vectorization_mode="async", obs_type="pixels", image_size=32)
    obs, _ = vec.reset(seed=0)
    vec.close()
    print("async ok", obs["pixels"].shape)
"""

FORKED_AFTER_RENDER = """
import gymnasium, envs
if __name__ == "__main__":
    single = gymnasium.make("crlab/Reach-v0", render_mode="rgb_array")
    single.reset(seed=0)
    single.render()
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, vectorization_mode="async", obs_type="pixels", image_size=32,
                             vector_kwargs={"context": "fork"})
    vec.reset(seed=0)
"""

UNGUARDED_SCRIPT = """
import gymnasium, envs
single = gymnasium.make("crlab/Reach-v0", render_mode="rgb_array")
single.reset(seed=0)
single.render()
vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, vectorization_mode="async")
vec.reset(seed=0)
vec.close()
print("async ok")
"""


def run_script(path: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a Python script in its own process group; past `timeout` s the whole group is killed (a blocked script's
    worker processes too) and the test fails."""
    return finish_script(start_script(path), path, timeout)


def start_script(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish_script(process: subprocess.Popen, path: Path, timeout: float) -> subprocess.CompletedProcess:
    """Wait for a script `start_script` started, as `run_script` does. One that has ended is collected whatever time
    is left: a walk started in the background can end long before a slow suite reaches its test."""
    try:
        stdout, stderr = process.communicate(timeout=None if process.poll() is not None else max(timeout, 0))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{path.name} still ran after {timeout} s (blocked)\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _run(tmp_path: Path, source: str, timeout: int = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "user_script.py"
    script.write_text(source)
    return run_script(script, timeout)


def test_async_env_made_before_any_render_leaves_later_async_envs_safe(tmp_path):
    """The first async env fixed multiprocessing's start method to fork; the first render makes it forkserver again,
    and says so."""
    result = _run(tmp_path, ASYNC_BEFORE_AND_AFTER_RENDER)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "async ok (2, 3, 32, 32)" in result.stdout
    assert "crlab made it 'forkserver'" in result.stderr


def test_a_forked_child_of_a_rendering_process_refuses_to_render(tmp_path):
    """Asked for fork explicitly, the workers would block on their first frame: they raise at once instead."""
    result = _run(tmp_path, FORKED_AFTER_RENDER)
    assert result.returncode != 0
    assert "this process was forked from one that renders with GL" in result.stderr + result.stdout


def test_an_unguarded_script_is_refused_in_the_workers_instead_of_running_again(tmp_path):
    """Workers started by forkserver (chosen at the first render) import the main script again: without
    `if __name__ == "__main__":` each would run the script first (the parent waiting meanwhile); the first env it
    makes there raises, naming the fix."""
    result = _run(tmp_path, UNGUARDED_SCRIPT)
    assert result.returncode != 0
    assert 'make envs under `if __name__ == "__main__":`' in result.stderr
