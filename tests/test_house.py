"""House rules that are cheap to check: ruff is clean, and every agent YAML (scripts/conf/agent/) says what its
config dataclass says (one source of truth: a YAML default that drifted from the dataclass fails here)."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from agents import AGENTS

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is a dev dependency (pip install -e .[dev])")
    result = subprocess.run([ruff, "check", "envs", "agents", "rewards", "scripts", "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("path", sorted((ROOT / "scripts" / "conf" / "agent").glob("*.yaml")), ids=lambda p: p.stem)
def test_agent_yaml_defaults_equal_the_dataclass(path):
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    name = cfg.pop("name")
    fields = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
              for f in dataclasses.fields(AGENTS[name][1])}
    assert set(cfg) == set(fields), f"{path.name}: keys differ from {AGENTS[name][1].__name__}"
    drift = {k: (v, fields[k]) for k, v in cfg.items() if not (isinstance(v, str) and v.startswith("${")) and v != fields[k]}
    assert not drift, f"{path.name}: YAML vs dataclass defaults differ: {drift}"
