#!/usr/bin/env bash
# int8 inference measured on a DeiT-Tiny-sized ViT (ort_export.py's, random weights of a trained
# model's scale), beside PyTorch's quantize_dynamic on the same Linear layers and ONNX Runtime fp32:
#  1. accuracy, when IMAGES names a folder of photos: the first N are preprocessed by cgrad, and each
#     side's int8 logits are held against its own float32 logits: relative L2 error of the logits
#     (centred: cgrad's are read back from predict --json's probabilities, which fix them up to a
#     constant), top-1 agreement and the overlap of the top-5 sets;
#  2. speed: cgrad float32 and int8 (`bench --int8`), PyTorch float32 and int8, ONNX Runtime float32,
#     at batch 1 and batch B on T threads, in alternating rounds; the best round of each.
#   bench/int8_compare.sh [IMAGES] [N] [B] [T] [STEPS] [ROUNDS]
# Needs a build, python3-torch, node and npm (ONNX Runtime as in ort_compare.sh); TORCH_MODERN adds a
# second PyTorch (as for compare.sh). CGRAD_INT8=avx2 (or another kernel) measures that int8 kernel.
# (Debian's PyTorch builds have no fbgemm: their quantized engine is oneDNN.)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${1:-} N=${2:-32} B=${3:-8} T=${4:-2} S=${5:-20} R=${6:-3}
. bench/ort_setup.sh # $bin, $ort (ONNX Runtime installed), a scratch $dir
# the PyTorch side as one file (vit_torch.py inlined): a TORCH_MODERN command may copy only the script
{ cat bench/vit_torch.py; grep -v '^from vit_torch import\|^sys.path.insert' bench/int8_torch.py; } > "$dir/int8_torch.py"
torches=(/usr/bin/python3)
[ -n "${TORCH_MODERN:-}" ] && torches+=("$TORCH_MODERN")
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/ort_export.py "$dir/model" >/dev/null
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), int8 kernel $("$bin" --version | sed -n 's/.*int8 kernel: //p')"
echo "CPU: $cpu"

if [ -n "$IMAGES" ]; then
  mapfile -t imgs < <(find "$IMAGES" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort | head -n "$N")
  [ ${#imgs[@]} -gt 0 ] || { echo "$IMAGES: no .jpg or .png photos" >&2; exit 2; }
  "$bin" preprocess --model "$dir/model" --out "$dir/px.safetensors" "${imgs[@]}" >/dev/null
  "$bin" predict --model "$dir/model" --json --top 1000 "${imgs[@]}" > "$dir/cgrad_fp32.jsonl"
  "$bin" predict --model "$dir/model" --json --top 1000 --int8 "${imgs[@]}" > "$dir/cgrad_int8.jsonl"
  /usr/bin/python3 bench/st_bundle.py "$dir/bundle.safetensors" "$dir/model/model.safetensors" "$dir/px.safetensors"
  for i in "${!torches[@]}"; do
    OPENBLAS_NUM_THREADS=1 ${torches[$i]} "$dir/int8_torch.py" logits < "$dir/bundle.safetensors" > "$dir/torch$i.json"
  done
  /usr/bin/python3 - "$dir" ${#torches[@]} <<'EOF'
import glob, json, math, sys
d, nt = sys.argv[1], int(sys.argv[2])
def cgrad(path):  # log-probabilities by id: the logits up to a constant per image
    rows = []
    for line in open(path):
        top = json.loads(line)["top"]
        z = [0.0] * len(top)
        for t in top:
            z[t["id"]] = math.log(max(t["prob"], 1e-45))
        rows.append(z)
    return rows
def centred(z):
    m = sum(z) / len(z)
    return [v - m for v in z]
def compare(ref, got):
    e2 = r2 = 0.0
    top1 = top5 = 0
    for a, b in zip(ref, got):
        a, b = centred(a), centred(b)
        e2 += sum((x - y) ** 2 for x, y in zip(a, b))
        r2 += sum(x * x for x in a)
        ra = sorted(range(len(a)), key=lambda i: -a[i])
        rb = sorted(range(len(b)), key=lambda i: -b[i])
        top1 += ra[0] == rb[0]
        top5 += len(set(ra[:5]) & set(rb[:5])) / 5
    n = len(ref)
    return "relative L2 error of the logits %.2f%%, top-1 agreement %d/%d, top-5 overlap %.1f%%" % (100 * math.sqrt(e2 / r2), top1, n, 100 * top5 / n)
c32, c8 = cgrad(d + "/cgrad_fp32.jsonl"), cgrad(d + "/cgrad_int8.jsonl")
print("accuracy on %d photos" % len(c32))
print("  cgrad --int8 against cgrad float32:     " + compare(c32, c8))
for i in range(nt):
    t = json.load(open("%s/torch%d.json" % (d, i)))
    print("  PyTorch %s quantize_dynamic (%s) against its float32: %s" % (t["torch"], t["engine"], compare(t["fp32"], t["int8"])))
    print("  (cgrad float32 against PyTorch float32: %s)" % compare(t["fp32"], c32))
EOF
fi

runs=()
for r in $(seq "$R"); do
  for b in 1 "$B"; do
    runs+=("cgrad $b $("$bin" bench --model "$dir/model" --infer-only --int8 --batch "$b" --threads "$T" --steps "$S" --json)")
    for pyexe in "${torches[@]}"; do
      runs+=("torch $b $(OPENBLAS_NUM_THREADS=1 $pyexe "$dir/int8_torch.py" time "$b" "$T" "$S" < "$dir/model/model.safetensors")")
    done
    runs+=("ort $b $(node "$ort/ort_bench.js" time "$dir/model" "$b" "$T" "$S")")
  done
done
printf '%s\n' "${runs[@]}" | /usr/bin/python3 -c '
import json, sys
best = {}
def keep(k, v):
    best[k] = max(best.get(k, 0), v)
for line in sys.stdin:
    who, b, js = line.split(" ", 2)
    r, b = json.loads(js), int(b)
    if who == "cgrad":
        keep(("cgrad float32", b), r["infer_img_per_s"]), keep(("cgrad int8", b), r["int8_img_per_s"])
    elif who == "torch":
        keep(("PyTorch %s float32" % r["torch"], b), r["fp32_img_per_s"])
        keep(("PyTorch %s int8 (%s)" % (r["torch"], r["engine"]), b), r["int8_img_per_s"])
    else:
        keep(("ONNX Runtime %s float32" % r["onnxruntime"], b), r["infer_img_per_s"])
for b in sorted({k[1] for k in best}):
    c8 = best[("cgrad int8", b)]
    print("batch %d (images/s, best of the rounds):" % b)
    for k in sorted((k for k in best if k[1] == b), key=lambda k: -best[k]):
        print("  %-36s %8.1f   cgrad int8 / this %.2fx" % (k[0], best[k], c8 / best[k]))
'
