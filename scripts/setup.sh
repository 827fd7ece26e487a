#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine with Python 3.11: system libraries for headless MuJoCo rendering
# (EGL through Mesa, works without a GPU), a C++ compiler for torch.compile, a virtual environment in .venv, and
# crlab in editable mode with the pinned stack of requirements.lock and its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq
  PKGS="libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libglx-mesa0 libgles2 libosmesa6"
  PKGS="$PKGS g++"  # torch.compile builds C++ kernels on CPU (agent.compile=true) ...
  apt-cache show python3.11-dev >/dev/null 2>&1 && PKGS="$PKGS python3.11-dev"  # ... against the Python headers
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# requirements.lock pins every package, transitive ones included, to the stack the tests ran on; crlab itself then
# installs without resolving anything again. pip check proves the pinned set is consistent.
.venv/bin/python -m pip install -q -r requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python -m pip check
MUJOCO_GL=egl .venv/bin/python -c "import envs, gymnasium; e = gymnasium.make('crlab/Reach-v0', render_mode='rgb_array'); e.reset(seed=0); assert e.render().std() > 0; e.close(); print('crlab set up: headless rendering works')"
