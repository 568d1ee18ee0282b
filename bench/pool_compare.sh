#!/usr/bin/env bash
# The cost of a parallel region, idle and beside one busy loop per core: libgomp with its default
# spin (GOMP_SPINCOUNT=300000), with cgrad's (10,000), passive (sleep at once), and a thread pool of
# the kind ONNX Runtime and llama.cpp use (spin 10,000 polls, then sleep on a futex; bench/pool_bench.c).
# Each region splits WORK_US microseconds of arithmetic per thread; regions of 20 us are what a
# batch-1 forward is made of. Alternating rounds; per setting the best and the median round (the mean
# time per region in each round).
#   bench/pool_compare.sh [ROUNDS] [REGIONS] [WORK_US]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-3} N=${2:-40000} W=${3:-20}
exe=$(mktemp)
loops=()
start_busy() { for _ in $(seq "$(nproc)"); do (while :; do :; done) & loops+=($!); done; sleep 0.3; }
stop_busy() { [ ${#loops[@]} -gt 0 ] && kill "${loops[@]}" 2>/dev/null; wait "${loops[@]}" 2>/dev/null || true; loops=(); }
trap 'stop_busy; rm -f "$exe"' EXIT
cc -O2 -fopenmp bench/pool_bench.c -o "$exe"
modes=("GOMP_SPINCOUNT=300000 omp" "GOMP_SPINCOUNT=10000 omp" "OMP_WAIT_POLICY=passive omp" "X=0 pool")
names=("libgomp, spin 300000 (its default)" "libgomp, spin 10000 (cgrad's)" "libgomp, passive" "own pool, spin 10000 then futex")
declare -A all
for r in $(seq "$R"); do
  for load in idle busy; do
    [ $load = busy ] && start_busy
    for i in "${!modes[@]}"; do
      set -- ${modes[$i]}
      v=$(env "$1" "$exe" "$2" "$N" "$W" 10000 | sed 's/.*"region_us": \([0-9.]*\).*/\1/')
      all["$i $load"]+="$v "
    done
    [ $load = busy ] && stop_busy
  done
done
stat() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f %.2f", v[1], v[int((NR + 1) / 2)] }'; }
printf '%-38s %22s %22s\n' "how threads wait ($W us regions)" "idle us: best, median" "busy us: best, median"
for i in "${!modes[@]}"; do
  read -r ib im <<< "$(stat "${all[$i idle]}")"
  read -r bb bm <<< "$(stat "${all[$i busy]}")"
  printf '%-38s %11.2f %10.2f %11.2f %10.2f\n' "${names[$i]}" "$ib" "$im" "$bb" "$bm"
done
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) threads"
