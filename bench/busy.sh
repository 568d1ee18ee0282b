#!/usr/bin/env bash
# How the speed holds on a busy machine: deit_lora bench alone and beside N busy loops (default:
# one per core), in alternating rounds, training and inference at batch 8 and inference at batch 1.
# Prints the best of each and the busy/idle ratio (0.5 is the fair share with one loop per core).
# ENV, when given, is put before the command (e.g. ENV="OMP_WAIT_POLICY=passive") to compare
# settings.
#   bench/busy.sh [BUSY_LOOPS] [ROUNDS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-$(nproc)} R=${2:-3} S=${3:-10}
bin=build/apps/deit_lora
[ -x "$bin" ] || { echo "build first: meson setup build && ninja -C build" >&2; exit 2; }
loops=()
start_busy() { for _ in $(seq "$N"); do (while :; do :; done) & loops+=($!); done; sleep 0.3; }
stop_busy() { [ ${#loops[@]} -gt 0 ] && kill "${loops[@]}" 2>/dev/null; wait "${loops[@]}" 2>/dev/null || true; loops=(); }
trap stop_busy EXIT
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
declare -A best
keep() { # keep KEY VALUE: the highest rate
    local k=$1 v=$2
    if [ -z "${best[$k]:-}" ] || python3 -c "import sys; sys.exit(0 if $v > ${best[$k]} else 1)"; then best[$k]=$v; fi
}
run() { # run MODE: one round of both batch sizes
    local mode=$1 o
    o=$(env ${ENV:-} "$bin" bench --batch 8 --steps "$S" --json)
    keep "$mode train8" "$(echo "$o" | field train_img_per_s)"
    keep "$mode infer8" "$(echo "$o" | field infer_img_per_s)"
    o=$(env ${ENV:-} "$bin" bench --batch 1 --steps $((S * 4)) --json)
    keep "$mode infer1" "$(echo "$o" | field infer_img_per_s)"
}
for r in $(seq "$R"); do
    run idle
    start_busy
    run busy
    stop_busy
done
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "CPU: $cpu, $(nproc) cores; $N busy loops; best of $R alternating rounds; ${ENV:-default environment}"
printf "%-22s %10s %10s %7s\n" measure idle busy ratio
for k in train8 infer8 infer1; do
    i=${best[idle $k]} b=${best[busy $k]}
    printf "%-22s %10s %10s %7.2f\n" "$k (img/s)" "$i" "$b" "$(python3 -c "print($b / $i)")"
done
