#!/usr/bin/env bash
# deit_lora explain against an independent PyTorch reference (explain_reference.py) on the golden
# tiny model, with and without its adapter, and on the DeiT-Tiny-sized golden model when ../shared
# is there. Skips without python3-torch. Prints "N passed, N failed".
set -uo pipefail
bin=$1 data=$2 shared=${3:-}
py=/usr/bin/python3
$py -c "import torch, numpy" 2>/dev/null || { echo "skip: python3-torch or python3-numpy not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=$(dirname "$0")/explain_reference.py
g=$data/golden
imgs=("$g"/images/*.jpg "$g"/images/*.png)
pass=0 fail=0
run() {
    local out
    out=$($py "$ref" "$bin" "$@" 2>&1)
    echo "$out" | grep -E "FAIL|largest|Error" | sed "s|^|[$(basename "$1") $(basename "$2")] |"
    local p f
    read -r p f < <(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
    if [ -z "${p:-}" ]; then fail=$((fail + 1)); echo "$out" | tail -5; else pass=$((pass + p)) fail=$((fail + f)); fi
}
run "$g/tiny" "$tmp" "${imgs[@]}"
run "$g/tiny" "$g/tiny_lora" "$tmp" "${imgs[@]}"
if [ -n "$shared" ] && [ -f "$shared/deit_tiny_random/config.json" ]; then
    run "$shared/deit_tiny_random" "$tmp" "${imgs[@]}"
    run "$shared/deit_tiny_random" "$shared/deit_tiny_random/adapter" "$tmp" "$g"/images/*.jpg
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
