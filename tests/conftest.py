import os

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


def pytest_collection_modifyitems(config, items):
    """The MuJoCo XLA tests start JAX, whose thread pools make every later os.fork() (the CLI tests' subprocesses)
    unsafe: run them last."""
    items.sort(key=lambda item: "test_mjx_reach" in item.nodeid)
