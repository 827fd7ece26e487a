#!/usr/bin/env bash
# The project's GPU checks as one command for a lent device machine (see README, "GPU"). On the development machine:
#   bash ../shared/device/wheels.sh dm-env==1.6 dm-tree   # wheels the device machine lacks, into .whl/ (git-ignored)
#   bash scripts/gpu_bench.sh --prepare                    # + .dmc/ (dm_control without its 100 MB of locomotion and
#                                                          #   dog assets, which the suite tasks never load) and .gl/
#                                                          #   (EGL / GL loader .debs); both git-ignored
# then one device call with carry [".whl", ".dmc", ".gl"] and the command:   bash scripts/gpu_bench.sh [SECONDS]
# 1. scripts.bench.gpu on CUDA: crl, ppo, curl and cpl (eager and agent.compile=true), and compiled crl_gpu
#    (+preset=gpu), SECONDS timed each (default 30; 0 skips this phase); when jax imports, compiled crl trained end to
#    end on MuJoCo XLA copies (crl_mjx x256, crl_gpu_mjx x4096) and reach on MJX alone at 4,096 copies (the mjx extra: jax,
#    jaxlib, mujoco-mjx wheels in .whl, plus jax's CUDA plugin wheels for the GPU: `bash ../shared/device/wheels.sh
#    jax==0.5.3 jaxlib==0.5.3 mujoco-mjx==3.3.0 ml_dtypes opt_einsum trimesh etils "jax-cuda12-plugin==0.5.3"
#    "jax-cuda12-pjrt==0.5.3"`, if they fit the carry; without the plugin it measures JAX on the host CPU and says so);
# 2. CURL on the DMC tasks (100k env steps each, all at once on the one GPU) until DMC_UNTIL seconds after the start
#    (default 540; 0 skips; DMC_TASKS="task:action_repeat ..." picks tasks), each ending with a 10-episode
#    evaluation. Batch 128 (the CURL authors' own run script); lr 2e-4 for cheetah-run as in the paper.
# Output in $OUT (default ./gpu_bench_out): gpu.txt, bench_gpu*.json, bench_gpu.log, curl_dmc.log, curl_dmc.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)

if [ "${1:-}" = "--prepare" ]; then
  set -e
  site=$(.venv/bin/python -c "import dm_control, os; print(os.path.dirname(os.path.dirname(dm_control.__file__)))")
  rm -rf .dmc && mkdir .dmc && cp -r "$site/dm_control" .dmc/
  (cd .dmc/dm_control && rm -rf locomotion suite/dog_assets suite/all_domains.png blender viewer \
     && find . -name __pycache__ -prune -exec rm -rf {} + && find . -name '*_test.py' -delete)
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  for d in /.dmc/ /.gl/; do grep -qx "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
  du -sh .whl .dmc .gl 2>/dev/null
  exit 0
fi

SECONDS_PER_AGENT="${1:-30}"
DMC_UNTIL="${DMC_UNTIL:-540}"
DMC_TASKS="${DMC_TASKS:-cartpole_swingup:8 reacher_easy:4 ball_in_cup_catch:4 finger_spin:2 walker_walk:2 cheetah_run:4}"
OUT="${OUT:-gpu_bench_out}"
mkdir -p "$OUT"
PY=python3
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD/.site:$PWD/.dmc:$PWD"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
fi
if [ -d .gl ]; then  # GL/EGL loaders for a bare image (the NVIDIA driver supplies the vendor library)
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$vendor"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-cuda}"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true; } > "$OUT/gpu.txt"
curl_env=()
has_dmc=1
$PY -c "import dm_control.suite" 2>/dev/null || { has_dmc=0; curl_env=(--override curl:env=reach_pixels); }
bench() { $PY -m scripts.bench.gpu --device "$DEVICE" --seconds "$SECONDS_PER_AGENT" "$@" 2>&1 | grep -v "No CUDA runtime" | tee -a "$OUT/bench_gpu.log"; }
if [ "$SECONDS_PER_AGENT" -gt 0 ]; then  # 0: straight to the DMC runs
  bench --agents crl ppo curl "${curl_env[@]}" --out "$OUT/bench_gpu.json"
  bench --agents ppo --override ppo:agent.compile=true --out "$OUT/bench_gpu_ppo_compiled.json"
  bench --agents crl --override crl:agent.compile=true --out "$OUT/bench_gpu_crl_compiled.json"
  bench --agents curl --override curl:agent.compile=true "${curl_env[@]}" --out "$OUT/bench_gpu_curl_compiled.json"
  bench --agents cpl --out "$OUT/bench_gpu_cpl.json"
  bench --agents cpl --override cpl:agent.compile=true --out "$OUT/bench_gpu_cpl_compiled.json"
  bench --agents crl_gpu --override crl_gpu:agent.compile=true --out "$OUT/bench_gpu_crl_gpu_compiled.json"
  if $PY -c "import jax, mujoco.mjx" 2>/dev/null; then  # end to end on the device: MJX copies, buffer, update
    bench --agents crl_mjx crl_gpu_mjx --override crl_mjx:agent.compile=true --override crl_gpu_mjx:agent.compile=true \
      --mjx-copies 4096 --out "$OUT/bench_gpu_mjx.json"
  else
    echo "mjx: jax / mujoco-mjx not importable here, skipped" | tee -a "$OUT/bench_gpu.log"
  fi
fi

left=$((DMC_UNTIL - ($(date +%s) - T0) - 60))  # 60 s for start-up and each run's final evaluation
if [ "$has_dmc" = 1 ] && [ "$left" -gt 30 ]; then
  echo "CURL on DMC: ${left} s of training per task, all tasks at once" | tee "$OUT/curl_dmc.log"
  for spec in $DMC_TASKS; do
    task=${spec%:*} repeat=${spec#*:}
    steps=$((100000 / repeat))
    lr=1.0e-3; [ "$task" = cheetah_run ] && lr=2.0e-4
    $PY -m scripts.train agent=curl env=dmc_$task device="$DEVICE" seed=0 total_env_steps=$steps time_limit_s=$left \
      eval_every=$((20000 / repeat)) eval_episodes=10 video_episodes=0 checkpoint_every=1000000 progress=false \
      agent.batch_size=128 agent.lr=$lr agent.buffer_size=$steps hydra.run.dir=dmc_runs/$task \
      > "dmc_runs_$task.log" 2>&1 &
  done
  wait
  for spec in $DMC_TASKS; do
    task=${spec%:*} repeat=${spec#*:}
    echo "== $task (action repeat $repeat; env_steps below are agent steps, x$repeat for DMC env steps)"
    cat "dmc_runs/$task/metrics.csv" 2>/dev/null || tail -n 20 "dmc_runs_$task.log"
  done | tee -a "$OUT/curl_dmc.log"
  tar czf "$OUT/curl_dmc.tgz" dmc_runs_*.log dmc_runs/*/metrics.csv dmc_runs/*/config.yaml 2>/dev/null
fi
ls -l "$OUT"
echo "total $(($(date +%s) - T0)) s"
