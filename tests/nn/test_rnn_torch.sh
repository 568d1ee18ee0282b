#!/usr/bin/env bash
# Runs rnn_torch_reference.py (PyTorch's GRU and LSTM layers and cells) and test_rnn_torch against
# them; skips (77) without Debian's python3-torch. The float64 gradchecks of ag_gru / ag_lstm in
# test_gradcheck run everywhere.
set -euo pipefail
exe=$1 here=$(dirname "$0")
py=/usr/bin/python3
$py -c "import torch" 2>/dev/null || { echo "skip: python3-torch is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$py "$here/rnn_torch_reference.py" "$tmp" >/dev/null
"$exe" "$tmp"
