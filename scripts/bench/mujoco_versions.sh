#!/usr/bin/env bash
# What pinning MuJoCo 3.3.0 costs crlab's own envs (docs/notes/stack.md): Reach and Push, one env and the batched
# vector env, timed on the pinned mujoco and then on each MuJoCo 4 release in the same sitting, one throughput record
# each (docs/benchmarks/records/throughput/envs_mujoco_X_Y_Z.json).
#   bash scripts/bench/mujoco_versions.sh ["what else ran on the machine"]
# Each MuJoCo 4 release ($MUJOCO_VERSIONS, default "4.0.0 4.0.1") goes into a side virtual environment,
# .venv-mujoco-X.Y.Z, that reads everything else from .venv: only mujoco differs between the records. Fetch and
# MetaWorld do not run on MuJoCo 4 (the reason for the pin), so only crlab's own envs are compared.
set -euo pipefail
cd "$(dirname "$0")/../.."
BESIDE="${1:-nothing else}"
OUT=docs/benchmarks/records/throughput
ARGS=(--envs crlab/Reach-v0 crlab/Push-v0 --forms single batched --repeats 3)
version_of() { "$1" -c 'import importlib.metadata as m; print(m.version("mujoco"))' 2>/dev/null; }

site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for version in ${MUJOCO_VERSIONS:-4.0.0 4.0.1}; do
  venv=.venv-mujoco-$version
  if [ "$(version_of "$venv/bin/python")" != "$version" ]; then
    rm -rf "$venv"
    .venv/bin/python -m venv "$venv"
    mine=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "import site; site.addsitedir('$site')" > "$mine/zz_crlab_venv.pth"  # searched after its own mujoco
    # MuJoCo 4 is three wheels: the bindings, the engine (mujoco-core) and the viewer (mujoco-studio)
    "$venv/bin/pip" install -q --no-deps "mujoco==$version" "mujoco-core==$version" "mujoco-studio==$version"
  fi
done

for python in .venv/bin/python .venv-mujoco-*/bin/python; do
  version=$(version_of "$python")
  [ "$python" = .venv/bin/python ] || [[ " ${MUJOCO_VERSIONS:-4.0.0 4.0.1} " == *" $version "* ]] || continue
  "$python" -m scripts.bench.envs "${ARGS[@]}" --out "$OUT/envs_mujoco_${version//./_}.json" --beside "$BESIDE"
done
