#!/usr/bin/env bash
# One prepared device check (issue 15): under 8 minutes on one H200.
#
#   benchmarks/device_check.sh                       # CUDA, batch 32, --amp
#   benchmarks/device_check.sh --device cpu --tiny   # CPU smoke run
#   benchmarks/device_check.sh --device cpu --tiny --methods hst   # the test's
#
# 1. bench_step.py: one full training step of plain ResNet-101 / partial BCE /
#    SSGRL / HST / DSRB (448 px) and plain ViT-B/16 / SigRL (224 px) at C = 80
#    and 200, --amp, batch 32 (--batch), in one process (peak reset per case);
#    then one profiled step of plain_r101 / HST / DSRB at C = 80.
# 2. bench_data.py: images/s of the protocol pipeline per CPU worker.
# 3. tools/train.py --amp, 50 iterations each of HST, DSRB, SigRL on generated
#    640x480 JPEGs (COCO layout) with every phase on from epoch 0 (prototype
#    passes included), no validation / checkpoint.
# 4. benchmarks/device_results.md (--out): GPU name, torch version, img/s,
#    peak memory of all of the above.
# Each stage has its own time limit (timeout) so a hang cannot eat the budget;
# a failed stage is reported in the table and the script goes on.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=cuda
BATCH=32
TINY=0
WORK=${WORK:-}
OUT=benchmarks/device_results.md
STEPS=10
METHODS="hst dsrb sigrl"
ARGV="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --work) WORK=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --methods) METHODS=$2; shift 2 ;;
    *) echo "device_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
WORK=${WORK:-$(mktemp -d /tmp/mlrpl_device_check.XXXXXX)}
mkdir -p "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
STEP_ARGS=(--device "$DEVICE" --amp --batch "$BATCH" --steps "$STEPS" --warmup 3 --in-process)
TRAIN_N=$((50 * BATCH))
WORKERS=12
LIMIT_STEP=160; LIMIT_PROF=45; LIMIT_DATA=25; LIMIT_TRAIN=80
if [ "$TINY" = 1 ]; then
  # tiny: the profile in the same call (one interpreter start less)
  STEP_ARGS=(--device "$DEVICE" --amp --batch 2 --steps 1 --warmup 1 --in-process --tiny --cases plain_r101 hst --classes 80 --profile)
  BATCH=2; TRAIN_N=100; WORKERS=0
fi
echo "device_check: work dir $WORK, device $DEVICE, batch $BATCH, tiny $TINY"
$PY - "$WORK" "$DEVICE" "$TINY" "$ARGV" <<'EOF'
import json, os, sys
import torch
work, dev, tiny, argv = sys.argv[1:5]
name = torch.cuda.get_device_name(0) if dev.startswith('cuda') and \
    torch.cuda.is_available() else 'CPU'
with open(os.path.join(work, 'env.json'), 'w') as f:
    json.dump(dict(device=name, load=[round(x, 2) for x in os.getloadavg()],
                   mode='tiny' if tiny == '1' else 'full',
                   command='benchmarks/device_check.sh ' + argv), f)
print('device:', name, 'torch', torch.__version__)
EOF

# 1. training step
timeout $LIMIT_STEP $PY benchmarks/bench_step.py "${STEP_ARGS[@]}" \
  --json "$WORK/step.json" > "$WORK/step.log" 2>&1 || echo "bench_step failed (rc $?), see $WORK/step.log"
tail -n 20 "$WORK/step.log"
if [ "$TINY" != 1 ]; then
  timeout $LIMIT_PROF $PY benchmarks/bench_step.py --device "$DEVICE" --amp --batch "$BATCH" \
    --steps 1 --warmup 2 --in-process --cases plain_r101 hst dsrb --classes 80 --profile \
    --json "$WORK/step_profile.json" > "$WORK/step_profile.log" 2>&1 || echo "profile failed (rc $?), see $WORK/step_profile.log"
fi

# 2. data loading per worker
timeout $LIMIT_DATA $PY benchmarks/bench_data.py --images $([ "$TINY" = 1 ] && echo 4 || echo 48) \
  --repeat 1 --json "$WORK/data.json" > "$WORK/data.log" 2>&1 || echo "bench_data failed (rc $?)"
cat "$WORK/data.log" | tail -n 2

# 3. 50-iteration trainings
$PY benchmarks/device_check.py data "$WORK" "$TRAIN_N" > /dev/null || echo "data generation failed"
for M in $METHODS; do
  B=$BATCH
  CFG=$($PY benchmarks/device_check.py config "$WORK" $M $B $WORKERS $([ "$TINY" = 1 ] && echo --tiny))
  S=$(date +%s%N)
  if [ "$TINY" = 1 ]; then
    # 2 iterations are enough to check the wiring on a CPU
    EXTRA=(--cfg-options train_dataloader.dataset.dataset.indices=4)
  else
    EXTRA=()
  fi
  timeout $LIMIT_TRAIN $PY tools/train.py "$CFG" --amp --no-validate \
    --work-dir "$WORK/train_$M" ${EXTRA[@]+"${EXTRA[@]}"} > "$WORK/train_$M.log" 2>&1
  RC=$?
  MS=$(( ($(date +%s%N) - S) / 1000000 ))
  printf '%d.%03d %d\n' $((MS / 1000)) $((MS % 1000)) $RC > "$WORK/train_$M.wall"
  echo "train $M: rc $RC, $(cut -d' ' -f1 "$WORK/train_$M.wall") s"
  [ $RC = 0 ] || tail -n 5 "$WORK/train_$M.log"
done

# 4. results table
$PY benchmarks/device_check.py report "$WORK" "$OUT" > /dev/null && echo "wrote $OUT"
echo "device_check: $(( $(date +%s) - T0 )) s in all"
