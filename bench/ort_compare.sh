#!/usr/bin/env bash
# cgrad's inference against ONNX Runtime's (the CPU build inside npm's onnxruntime-node, fp32) on the
# same DeiT-Tiny-sized ViT: ort_export.py writes the model (safetensors for cgrad, ONNX for ONNX
# Runtime, through Debian's python3-torch), `deit_lora check` first holds cgrad's logits against
# ONNX Runtime's (1e-4), then both are timed in alternating rounds at batch 1 and at batch B.
# Prints the best round of each and the ratios, with the CPU and the fraction of the machine's
# sgemm rate each reaches.
#   bench/ort_compare.sh [BATCH] [THREADS] [STEPS] [ROUNDS]
# Needs a build, python3-torch, node and npm; onnxruntime-node is installed into bench/.ort (not
# committed; npm's install script is skipped: it only fetches GPU parts).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-8} T=${2:-2} S=${3:-20} R=${4:-3}
. bench/ort_setup.sh # $bin, $ort (ONNX Runtime installed), a scratch $dir
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/ort_export.py "$dir" >/dev/null
node "$ort/ort_bench.js" check "$dir"
"$bin" check "$dir" "$dir/io.safetensors" | tail -1
runs=()
for r in $(seq "$R"); do
  for b in 1 "$B"; do
    runs+=("cgrad $b $("$bin" bench --model "$dir" --infer-only --batch "$b" --threads "$T" --steps "$S" --json)")
    runs+=("ort $b $(node "$ort/ort_bench.js" time "$dir" "$b" "$T" "$S")")
  done
done
printf '%s\n' "${runs[@]}" | /usr/bin/python3 -c '
import json, sys
best, gemm, cpu = {}, 0, ""
for line in sys.stdin:
    who, b, js = line.split(" ", 2)
    r = json.loads(js)
    k = (who, int(b))
    best[k] = max(best.get(k, 0), r["infer_img_per_s"])
    if who == "cgrad":
        gemm, cpu = max(gemm, r["sgemm_gflops_per_s"]), r["cpu"] + " (" + r["cpu_features"] + ")"
# a DeiT-Tiny forward: 2.5 GFLOP an image (the linear layers, attention, patches, head)
T, D, F, L = 197, 192, 768, 12
flop = 2 * (L * (T * (4 * D * D + 2 * D * F) + 2 * T * T * D) + 196 * D * 768 + D * 1000)
print("CPU: %s; sgemm 2048^3 %.0f GFLOP/s; inference limit at that rate %.0f images/s" % (cpu, gemm, gemm * 1e9 / flop))
for b in sorted({k[1] for k in best}):
    c, o = best[("cgrad", b)], best[("ort", b)]
    print("batch %d: cgrad %.1f images/s (%.2f of the limit), ONNX Runtime %.1f (%.2f); cgrad / ONNX Runtime %.2fx"
          % (b, c, c * flop / (gemm * 1e9), o, o * flop / (gemm * 1e9), c / o))
'
