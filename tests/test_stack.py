"""The installed stack is the pinned one: pip check is clean and every package matches requirements.lock."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_pip_check_is_clean():
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_installed_versions_are_the_locked_ones():
    wrong = {}
    for name, version in _lock().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed: {wrong}"


@pytest.mark.parametrize("package", ["mujoco", "dm-control", "metaworld", "gymnasium-robotics", "gymnasium"])
def test_pyproject_pins_agree_with_the_lock(package):
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"{package}=={_lock()[package]}"' in text
