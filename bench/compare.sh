#!/usr/bin/env bash
# Runs deit_lora bench and the PyTorch eager version of the same step in one session, in
# alternating rounds (the machines are shared and noisy), and prints the best of each side and the
# ratios. PyTorch gets its best thread setting too (OPENBLAS_NUM_THREADS=1, 1 or T intra-op threads).
# Needs a build (./quickstart.sh builds one) and Debian's python3-torch.
#   bench/compare.sh [BATCH] [THREADS] [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-8} T=${2:-2} S=${3:-10} R=${4:-3}
bin=build/apps/deit_lora
[ -x "$bin" ] || { echo "build first: ./quickstart.sh test (or meson setup build && ninja -C build)" >&2; exit 2; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs python3-torch (apt-get install python3-torch)" >&2; exit 2; }
runs=()
for r in $(seq "$R"); do
  runs+=("cgrad $("$bin" bench --batch "$B" --threads "$T" --steps "$S" --json)")
  for t in 1 "$T"; do
    runs+=("torch $(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py --batch "$B" --threads "$t" --steps "$S" --json)")
  done
done
printf '%s\n' "${runs[@]}" | /usr/bin/python3 bench/summarize.py
