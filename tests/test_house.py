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


PACKAGES = ("envs", "agents", "rewards", "scripts")
LAYERS = {"envs": set(), "agents": {"envs"}, "rewards": {"envs"}, "scripts": {"envs", "agents", "rewards"}}


def module_imports(root: Path) -> dict[str, set[str]]:
    """Every module of the four packages -> the package modules it imports anywhere (function bodies included:
    a lazy import is still an edge)."""
    import ast

    modules = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
               for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_and_imports_point_down():
    graph = module_imports(ROOT)
    assert len(graph) > 50 and "scripts.engine" in graph
    assert cycles(graph) == []
    upward = [f"{m} -> {t}" for m, targets in graph.items() for t in targets
              if t.split(".")[0] != m.split(".")[0] and t.split(".")[0] not in LAYERS[m.split(".")[0]]]
    assert upward == []


def test_every_agent_declares_what_the_run_engine_calls():
    """The engine picks an experience source from an agent's declared `loop` and hands datasets / envs over through
    declared protocols (agents.base), never by discovering methods with getattr."""
    from agents import AGENTS, LOOPS

    for name, (cls, _) in AGENTS.items():
        assert cls.__dict__.get("loop", None) in LOOPS or any(b.__dict__.get("loop") in LOOPS for b in cls.__mro__), name
        assert cls.dataset_format in (None, "goal", "preferences"), name
        if cls.dataset_format is not None:
            assert callable(getattr(cls, "set_dataset", None)), name  # agents.base.LearnsOffline
        if cls.loop == "sb3":
            assert callable(getattr(cls, "bind", None)), name  # agents.base.DrivenBySB3
