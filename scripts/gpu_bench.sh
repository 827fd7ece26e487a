#!/usr/bin/env bash
# The project's GPU checks as one command for a lent device machine (see README, "GPU"). On the development machine:
#   bash ../shared/device/wheels.sh          # the wheels the device machine lacks, into .whl/ (git-ignored)
# then one device call with carry [".whl"] and the command:   bash scripts/gpu_bench.sh [SECONDS]
# It runs scripts.bench_gpu on CUDA for crl, ppo (eager and agent.compile=true) and curl, and writes
# gpu.txt, bench_gpu*.json and bench_gpu.log into $OUT (default ./gpu_bench_out). dm-control does not fit the
# carry limit, so without it curl runs on reach from pixels instead of DMC cartpole-swingup.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_AGENT="${1:-30}"
OUT="${OUT:-gpu_bench_out}"
mkdir -p "$OUT"
PY=python3
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD/.site:$PWD"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
DEVICE="${DEVICE:-cuda}"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true; } > "$OUT/gpu.txt"
curl_env=()
$PY -c "import dm_control" 2>/dev/null || curl_env=(--override curl:env=reach_pixels)
bench() { $PY -m scripts.bench_gpu --device "$DEVICE" --seconds "$SECONDS_PER_AGENT" "$@" 2>&1 | grep -v "No CUDA runtime" | tee -a "$OUT/bench_gpu.log"; }
bench --agents crl ppo curl "${curl_env[@]}" --out "$OUT/bench_gpu.json"
bench --agents ppo --override ppo:agent.compile=true --out "$OUT/bench_gpu_ppo_compiled.json"
ls -l "$OUT"
