#!/usr/bin/env bash
# How many OpenMP parallel regions a command opens, by the function that opens them (its outlined
# body, FUNCTION._omp_fn.N), most first, and the total; beside each, the calls that ran on one
# thread (an if clause false, or nested), which no thread waits on. Regions are where a thread can
# wait for a partner the OS has descheduled: on a busy machine, fewer is better.
#   bench/omp_regions.sh COMMAND [ARGS...]
# e.g. bench/omp_regions.sh build/apps/deit_lora bench --infer-only --batch 1 --steps 10 --warmup 0
# (run it with two step counts: the difference over the extra steps is the count per step)
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
gcc -shared -fPIC -O2 -o "$dir/omp_regions.so" "$(dirname "$0")/omp_regions.c" -ldl
LD_PRELOAD="$dir/omp_regions.so" "$@" 2>"$dir/err" >/dev/null || true
printf '%8s %8s  %s\n' regions 1-thread function
grep '^omp_regions ' "$dir/err" | sort -k2,2 -rn | while read -r _ count one file off; do
    printf '%8d %8d  %s\n' "$count" "$one" "$(addr2line -f -e "$file" "$off" | head -1)"
done
awk '/^omp_regions / {n += $2; s += $3} END {printf "%8d %8d  in all\n", n, s}' "$dir/err"
