#!/usr/bin/env bash
# A model of examples/ against the same model in eager PyTorch (Debian's python3-torch, and a current
# one when TORCH_MODERN names a command that runs a Python script with it, as for compare.sh): the
# training step on random images, in alternating rounds; prints the best round of each and the
# ratio against the faster PyTorch.
#   bench/model_compare.sh MODEL [THREADS] [STEPS] [ROUNDS]
# MODEL: cnn (examples/cnn_fashion.c, batch 64), resnet (examples/resnet_fashion.c, batch 128),
# gru (examples/gru_rows.c, batch 128). Each example times BENCH_STEPS=N steps after 5 untimed.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:?MODEL: cnn, resnet or gru} T=${2:-2} S=${3:-20} R=${4:-3}
case $M in
  cnn) src=examples/cnn_fashion.c py=bench/cnn_torch.py ;;
  resnet) src=examples/resnet_fashion.c py=bench/resnet_torch.py ;;
  gru) src=examples/gru_rows.c py=bench/gru_torch.py ;;
  *) echo "MODEL: cnn, resnet or gru" >&2; exit 2 ;;
esac
[ -f build/libcgrad.a ] || { echo "build first (meson setup build && ninja -C build)" >&2; exit 2; }
exe=$(mktemp) one=$(mktemp --suffix=.py)
trap 'rm -f "$exe" "$one"' EXIT
# the PyTorch side as one file (its timing helper inlined): a TORCH_MODERN command may copy only the script
{ cat bench/torch_steps.py; grep -v '^from torch_steps import\|^sys.path.insert' "$py"; } > "$one"
cc -std=c11 -O2 -I. "$src" build/libcgrad.a build/libcgrad-core.a $(pkg-config --libs openblas libpng libjpeg zlib libcjson libpcre2-8) \
   $(pkg-config --libs ompi-c 2>/dev/null || true) -fopenmp -lm -o "$exe"
torches=()
/usr/bin/python3 -c "import torch" 2>/dev/null && torches+=("/usr/bin/python3")
[ -n "${TORCH_MODERN:-}" ] && torches+=("$TORCH_MODERN")
[ ${#torches[@]} -gt 0 ] || { echo "needs python3-torch or TORCH_MODERN" >&2; exit 2; }
best_c=1e9
declare -A best_t
for r in $(seq "$R"); do
  c=$(OMP_NUM_THREADS=$T BENCH_STEPS=$S "$exe" | sed 's/.*"step_ms": \([0-9.]*\).*/\1/')
  best_c=$(awk -v a="$best_c" -v b="$c" 'BEGIN { print (b < a) ? b : a }')
  for pyexe in "${torches[@]}"; do
    out=$(OPENBLAS_NUM_THREADS=1 $pyexe "$one" --threads "$T" --steps "$S" --json)
    v=$(echo "$out" | sed 's/.*"step_ms": \([0-9.]*\).*/\1/'); ver=$(echo "$out" | sed 's/.*"torch": "\([^"]*\)".*/\1/')
    best_t[$ver]=$(awk -v a="${best_t[$ver]:-1e9}" -v b="$v" 'BEGIN { print (b < a) ? b : a }')
  done
done
faster=1e9
for ver in "${!best_t[@]}"; do
  printf 'PyTorch %-14s %8.2f ms per step\n' "$ver" "${best_t[$ver]}"
  faster=$(awk -v a="$faster" -v b="${best_t[$ver]}" 'BEGIN { print (b < a) ? b : a }')
done
printf 'cgrad                  %8.2f ms per step (%s, %s threads; CPU %s)\n' "$best_c" "$M" "$T" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
awk -v t="$faster" -v c="$best_c" 'BEGIN { printf "cgrad against the faster PyTorch: %.2fx\n", t / c }'
