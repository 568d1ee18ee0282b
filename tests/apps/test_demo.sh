#!/usr/bin/env bash
# The demo's short variant learns: pretraining loss falls, base accuracy is well above chance
# (11% for nine classes), and both LoRA recipes run to the end. Skips (77) without Fashion-MNIST.
set -u
bin=$1
[ -d /usr/share/datasets/fashion-mnist ] || { echo "skip: dataset-fashion-mnist is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$("$bin" demo --quick --work "$tmp" 2>/dev/null); rc=$?
echo "$out"
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
ok "the demo exits 0" '[ $rc -eq 0 ]'
first=$(echo "$out" | sed -n 's/^pretraining: .* loss \([0-9.]*\) at first, \([0-9.]*\) at the end$/\1/p')
last=$(echo "$out" | sed -n 's/^pretraining: .* loss \([0-9.]*\) at first, \([0-9.]*\) at the end$/\2/p')
ok "pretraining loss falls ($first -> $last)" '[ -n "$first" ] && awk -v a="$first" -v b="$last" "BEGIN { exit !(b < 0.8 * a) }"'
base=$(echo "$out" | sed -n 's/^base model: accuracy on the nine classes.* \([0-9.]*\)% .*/\1/p')
ok "base accuracy well above chance ($base%)" '[ -n "$base" ] && awk -v a="$base" "BEGIN { exit !(a > 33) }"'
ok "both LoRA recipes report" '[ $(echo "$out" | grep -c "^held-out .Ankle boot. recall") -eq 2 ]'
ok "the pretrained model is an HF directory" '[ -f "$tmp/pretrained/config.json" ] && [ -f "$tmp/pretrained/model.safetensors" ]'
ok "the adapters are saved" '[ -f "$tmp/adapter_mixed/adapter_model.safetensors" ] && [ -f "$tmp/adapter_notebook/adapter_config.json" ]'
# the saved adapter works with the other commands on the saved model
ok "predict with the demo's adapter" '"$bin" predict --model "$tmp/pretrained" --adapter "$tmp/adapter_mixed" --top 3 --json "$(dirname "$0")/../data/golden/images/small_20x30.jpg" | grep -q "\"top\""'
echo "demo: $pass passed, $fail failed"
[ "$fail" = 0 ]
