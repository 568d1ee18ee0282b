#!/usr/bin/env bash
# Runs torch_crosscheck.py for three seeds (three model shapes) and `deit_lora check` on each,
# without and with the adapter. Skips (77) when Debian's python3-torch is not installed.
set -euo pipefail
bin=$1 here=$(dirname "$0")
py=/usr/bin/python3
$py -c "import torch" 2>/dev/null || { echo "skip: python3-torch is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for seed in 0 1 2; do
  d=$tmp/m$seed
  $py "$here/torch_crosscheck.py" "$d" $seed
  "$bin" check "$d" "$d/io.safetensors" | tail -1
  "$bin" check "$d" "$d/io.safetensors" --adapter "$d/adapter" | tail -1
done
