#!/usr/bin/env bash
# What pinning MuJoCo 3.3.0 costs crlab's own envs (docs/notes/stack.md): Reach and Push, one env and the batched
# vector env, timed on the pinned mujoco and then on MuJoCo 4 in the same sitting, one throughput record each.
#   bash scripts/bench/mujoco_versions.sh ["what else ran on the machine"]
# MuJoCo 4 goes into a side virtual environment ($MJ4_VENV, default .venv-mujoco4; $MJ4_VERSION, default 4.0.0)
# that reads everything else from .venv: only mujoco differs between the two records. Fetch and MetaWorld do not run
# on MuJoCo 4 (the reason for the pin), so only crlab's own envs are compared.
set -euo pipefail
cd "$(dirname "$0")/../.."
BESIDE="${1:-nothing else}"
MJ4="${MJ4_VENV:-.venv-mujoco4}"
VERSION="${MJ4_VERSION:-4.0.0}"
OUT=docs/benchmarks/records/throughput
ARGS=(--envs crlab/Reach-v0 crlab/Push-v0 --forms single batched --repeats 3)

if [ "$("$MJ4/bin/python" -c 'import importlib.metadata as m; print(m.version("mujoco"))' 2>/dev/null)" != "$VERSION" ]; then
  rm -rf "$MJ4"
  .venv/bin/python -m venv "$MJ4"
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mine=$("$MJ4/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$site')" > "$mine/zz_crlab_venv.pth"  # after its own mujoco
  # MuJoCo 4 is three wheels: the bindings, the engine (mujoco-core) and the viewer (mujoco-studio)
  "$MJ4/bin/pip" install -q --no-deps "mujoco==$VERSION" "mujoco-core==$VERSION" "mujoco-studio==$VERSION"
fi

pinned=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mujoco"))')
.venv/bin/python -m scripts.bench.envs "${ARGS[@]}" --out "$OUT/envs_mujoco_${pinned//./_}.json" --beside "$BESIDE"
"$MJ4/bin/python" -m scripts.bench.envs "${ARGS[@]}" --out "$OUT/envs_mujoco_${VERSION//./_}.json" --beside "$BESIDE"
