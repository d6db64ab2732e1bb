#!/usr/bin/env bash
# Train on a lent GPU machine: it has JAX but no TensorFlow or Keras, and nothing can be fetched there.
# Runs the same `python -m fer_core train` command as on a CPU, on Keras' JAX backend, one process per
# seed at once on the one GPU, and leaves one archive per run in $OUT (the device tool brings back at
# most 8 files). What the call must carry, made here beforehand (README, "Training on a lent GPU"):
#   .device/whl/           keras and the two packages it needs that the machine lacks (Python 3.12 wheels)
#   .device/fer2013.tar.xz the FER2013 image folders (train/ and validation/)
# Usage, as the device command:  bash tools/device_train.sh "SEED SEED ..." TRAIN_OPTION...
# Several recipes side by side, separated by a lone +:  bash tools/device_train.sh "31 32" --arch resnet_preact
#   ... + "41" --arch vgg_wide --crop 2 ...  (seeds distinct across recipes: each names its run folder).
# DEADLINE=SECONDS stops the runs still training after that long, so that their archives (best epoch so
# far, history) still come back inside the device call's limit; 0 (the default) waits for them.
# Locally (to try it): WHEELS= PYTHON=/path/to/python-with-jax OUT=/tmp/out bash tools/device_train.sh ...
set -euo pipefail
python=${PYTHON:-python3}
carried=${CARRIED:-.device}
wheels=${WHEELS-$carried/whl}
out=${OUT:?set OUT to the folder the runs are left in}
deadline=${DEADLINE:-0}
if [ -n "$wheels" ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$wheels"/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
# Several trainings share the GPU: each takes memory as it needs it, not 75 % of it up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
data=${DATA:-/tmp/fer2013}
if [ ! -d "$data" ]; then
  tar -xJf "$carried/fer2013.tar.xz" -C /tmp  # the archive holds fer2013/train and fer2013/validation
  data=/tmp/fer2013
fi
"$python" -c "import jax; print('jax', jax.__version__, jax.devices())"
monitor=
if command -v nvidia-smi >/dev/null 2>&1; then  # how busy the runs keep the GPU, every 20 s
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$out/gpu.csv" 2>&1 &
  monitor=$!
fi
pids=()
seeds=()
start_recipe() {  # SEEDS TRAIN_OPTION...: one run per seed, in the background
  local seed
  for seed in $1; do
    mkdir -p "runs/device_s$seed"
    timeout "$deadline" "$python" -m fer_core train --data "$data" --out "runs/device_s$seed" --seed "$seed" \
      --progress 2 "${@:2}" > "runs/device_s$seed/train.log" 2>&1 &
    pids+=("$!")
    seeds+=("$seed")
  done
}
recipe=()
for arg in "$@" +; do
  if [ "$arg" = + ]; then
    start_recipe "${recipe[@]}"
    recipe=()
  else
    recipe+=("$arg")
  fi
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
# Left running, the monitor would hold the call open until its limit (it did once: 5 idle minutes).
[ -z "$monitor" ] || kill "$monitor"
for seed in "${seeds[@]}"; do
  tail -n 3 "runs/device_s$seed/train.log"
  tar -czf "$out/device_s$seed.tgz" --exclude backup -C runs "device_s$seed"
done
exit "$failed"
