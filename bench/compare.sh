#!/usr/bin/env bash
# Runs deit_lora bench and the PyTorch eager version of the same step in one session and prints
# the ratios. PyTorch gets its best thread setting (OPENBLAS_NUM_THREADS=1, 1 or T intra-op
# threads). Needs a build (./quickstart.sh builds one) and Debian's python3-torch.
#   bench/compare.sh [BATCH] [THREADS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-8} T=${2:-2} S=${3:-10}
bin=build/apps/deit_lora
[ -x "$bin" ] || { echo "build first: ./quickstart.sh test (or meson setup build && ninja -C build)" >&2; exit 2; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs python3-torch (apt-get install python3-torch)" >&2; exit 2; }
ours=$("$bin" bench --batch "$B" --threads "$T" --steps "$S" --json)
best=""
for t in 1 "$T"; do
  r=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py --batch "$B" --threads "$t" --steps "$S" --json)
  best=$(/usr/bin/python3 - "$best" "$r" <<'PY'
import json, sys
a = json.loads(sys.argv[1]) if sys.argv[1] else None
b = json.loads(sys.argv[2])
print(json.dumps(b if a is None or b["train_step_ms"] < a["train_step_ms"] else a))
PY
)
done
/usr/bin/python3 - "$ours" "$best" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"batch {o['batch']}, {o['threads']} threads (PyTorch {p['torch']} best at {p['threads']} threads)")
print(f"  training step    cgrad {o['train_step_ms']:8.1f} ms   PyTorch {p['train_step_ms']:8.1f} ms   speed-up {p['train_step_ms'] / o['train_step_ms']:.2f}x")
print(f"  inference        cgrad {o['infer_img_per_s']:8.1f} img/s PyTorch {p['infer_img_per_s']:8.1f} img/s speed-up {o['infer_img_per_s'] / p['infer_img_per_s']:.2f}x")
print(f"  peak memory      cgrad {o['peak_rss_mb']:8.0f} MiB  PyTorch {p['peak_rss_mb']:8.0f} MiB  ratio {o['peak_rss_mb'] / p['peak_rss_mb']:.2f}")
print(f"  training FLOP rate {o['train_gflops_per_s']:.0f} GFLOP/s = {o['train_gflops_per_s'] / o['sgemm_gflops_per_s']:.2f} of sgemm's {o['sgemm_gflops_per_s']:.0f} GFLOP/s")
print("json:", json.dumps({"cgrad": o, "pytorch": p}))
PY
