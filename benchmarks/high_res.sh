#!/bin/bash
# MSG and progressive growing at 128 px, each with and without --d-blur, four runs side by side on
# one device for the same wall time; each run is stopped by SIGTERM (ganforge checkpoints and
# exits), then sampled (OUT/NAME.png) and scored with KID (lite0, 1,000 samples).
#
#   bash benchmarks/high_res.sh PHOTOS              # 7 minutes of training on cuda
#   SECONDS_EACH=60 DEVICE=cpu bash benchmarks/high_res.sh PHOTOS
set -u
DATA=${1:?usage: bash benchmarks/high_res.sh FOLDER_OF_PICTURES}
T=${SECONDS_EACH:-440}; DEV=${DEVICE:-cuda}; OUT=${OUT:-high-res}; RUNS=${RUNS:-$OUT/runs}; PY=${PYTHON:-python3}
[ -d "$DATA" ] || { echo "$DATA is not a folder of pictures." >&2; exit 1; }
[ -e "$RUNS" ] && { echo "$RUNS already exists; choose another OUT or RUNS." >&2; exit 1; }
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
G="$PY -m ganforge"
common="$DATA --size 128 --preset small --steps 200000 --device $DEV --sample-every 2000 --checkpoint-every 2000 --log-every 100"
declare -A V=([msg]="--arch msg" [grow]="--grow --grow-stage-steps 2000" [msg-blur]="--arch msg --d-blur" [grow-blur]="--grow --grow-stage-steps 2000 --d-blur")
for k in "${!V[@]}"; do
  timeout -s TERM "$T" $G train $common ${V[$k]} --run-dir "$RUNS/$k" > "$RUNS/$k.log" 2>&1 &
done
wait
for k in "${!V[@]}"; do
  ( $G sample "$RUNS/$k" -n 16 -o "$OUT/$k.png" --device "$DEV" > /dev/null
    $G evaluate "$RUNS/$k" --data "$DATA" -n 1000 --device "$DEV" --json > "$RUNS/$k.kid.json" ) &
done
wait
for k in msg grow msg-blur grow-blur; do
  $PY - "$k" "$RUNS/$k.kid.json" <<'PY'
import json, sys
name, path = sys.argv[1:]
try:
    r = json.load(open(path))
    print(f"{name:10s} step {r['step']:6d}  KID {r['kid']:.3f} +- {r['kid_std']:.3f}")
except (OSError, ValueError):
    print(f"{name:10s} no score; see {path.replace('.kid.json', '.log')}")
PY
done
