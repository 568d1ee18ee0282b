#!/usr/bin/env bash
# predict / eval / merge / train against an independent PyTorch reference (skips without python3-torch).
set -euo pipefail
py=/usr/bin/python3
$py -c "import torch, numpy, PIL" 2>/dev/null || { echo "skip: python3-torch, python3-numpy or python3-pil not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$py "$(dirname "$0")/torch_app_crosscheck.py" "$1" "$tmp"
