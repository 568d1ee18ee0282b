#!/usr/bin/env bash
# Runs deit_lora bench and the PyTorch eager version of the same step in one session, in
# alternating rounds (the machines are shared and noisy), and prints the best of each side and the
# ratios against the faster PyTorch. PyTorch gets its best thread setting too
# (OPENBLAS_NUM_THREADS=1, 1 or T intra-op threads). Two PyTorch builds take part where they are
# there: Debian's python3-torch (the system's), and a current one when TORCH_MODERN names a
# command that runs a Python script with it (TORCH_MODERN="CMD ARGS" runs "CMD ARGS SCRIPT ARGS...";
# for example a chroot with Debian 13's python3-torch 2.6, see BENCHMARKS.md).
# Needs a build (./quickstart.sh builds one).
#   bench/compare.sh [BATCH] [THREADS] [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-8} T=${2:-2} S=${3:-10} R=${4:-3}
bin=build/apps/deit_lora
[ -x "$bin" ] || { echo "build first: ./quickstart.sh test (or meson setup build && ninja -C build)" >&2; exit 2; }
torches=()
/usr/bin/python3 -c "import torch" 2>/dev/null && torches+=("/usr/bin/python3")
if [ -n "${TORCH_MODERN:-}" ]; then
  $TORCH_MODERN bench/torch_bench.py --help >/dev/null 2>&1 || { echo "TORCH_MODERN ($TORCH_MODERN) cannot run bench/torch_bench.py" >&2; exit 2; }
  torches+=("$TORCH_MODERN")
fi
[ ${#torches[@]} -gt 0 ] || { echo "needs python3-torch (apt-get install python3-torch) or TORCH_MODERN" >&2; exit 2; }
runs=()
for r in $(seq "$R"); do
  runs+=("cgrad $("$bin" bench --batch "$B" --threads "$T" --steps "$S" --json)")
  for py in "${torches[@]}"; do
    for t in 1 "$T"; do
      runs+=("torch $(OPENBLAS_NUM_THREADS=1 $py bench/torch_bench.py --batch "$B" --threads "$t" --steps "$S" --json)")
    done
  done
done
printf '%s\n' "${runs[@]}" | /usr/bin/python3 bench/summarize.py
