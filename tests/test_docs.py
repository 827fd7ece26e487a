"""The documentation holds: the README's limits, every relative link and image of README.md and docs/ resolves, every
registered env has its picture, the site builds with warnings as errors, and the extension examples run as printed."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest

import envs  # noqa: F401  (registers the crlab/ envs whose pictures are checked)
from scripts.render_env_pictures import DEFAULT_OUT, crlab_env_ids, picture_path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def relative_links(page: Path) -> list[str]:
    """Targets of the markdown links, images and HTML src / href of a page, outside code, that point to files:
    web, mail and in-page links are left out."""
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text()))
    targets = LINK.findall(text) + HTML_LINK.findall(text)
    return [t for t in targets if not re.match(r"^(https?:|mailto:|#)", t)]


def test_readme_is_short_with_short_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the limit is 250 (move detail into docs/)"
    long = [(n, len(line)) for n, line in enumerate(lines, 1) if len(line) > 200]
    assert not long, f"README.md lines over 200 characters (line, length): {long}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_resolve(page):
    broken = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_every_registered_env_has_its_picture_on_the_envs_page():
    ids = crlab_env_ids()
    assert len(ids) >= 36 and ids == [i for i in gymnasium.registry if i.startswith("crlab/")]
    missing = [i for i in ids if not picture_path(i, DEFAULT_OUT).is_file()]
    assert not missing, f"no picture for {missing}: python -m scripts.render_env_pictures --only ..."
    page = (DOCS / "envs" / "index.md").read_text()
    unshown = [i for i in ids if f"img/{picture_path(i, DEFAULT_OUT).name}" not in page]
    assert not unshown, f"docs/envs/index.md does not show the pictures of {unshown}"


def test_site_builds_with_warnings_as_errors(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.fail("mkdocs is not installed: it is pinned in requirements.lock (bash scripts/setup.sh)")
    result = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in ("index.html", "envs/index.html", "extending/agent/index.html", "api/agents/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "api" / "agents" / "index.html").read_text()
    assert 'id="agents.crl.CRLAgent"' in api, "the API reference was not generated from the docstrings"
    example = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "site" / "extending" / "env" / "index.html").read_text()))
    assert "class PointGoalTask(BatchedTask):" in example, "docs/examples/custom_env.py was not included in its page"


EXAMPLES = {  # the file -> lines its output must hold
    "custom_env.py": ["vector env: 4 copies, copy 2 replays the single env seeded 9", "success: scripted 1.00",
                      "crl on crlab/PointGoal-v0: final success"],
    "custom_agent.py": ["random-shooting MPC on crlab/Reach-v0", "success: untrained"],
    "custom_reward.py": ["goal_distance          Pearson 1.000  EPIC distance 0.000",
                         "shaped_goal_distance   Pearson"],
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_extension_example_runs(name):
    """Each example asserts its own results (an env a scripted policy solves and crl learns, an agent that beats its
    untrained self, EPIC's invariance to shaping); here it must exit 0 and print what the docs page shows."""
    result = subprocess.run([sys.executable, str(DOCS / "examples" / name)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    missing = [line for line in EXAMPLES[name] if line not in result.stdout]
    assert not missing, f"{name} did not print {missing}:\n{result.stdout[-3000:]}"
