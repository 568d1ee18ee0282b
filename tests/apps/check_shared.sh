#!/usr/bin/env bash
# deit_lora check on ../shared/golden/deit_tiny_random (23 MB, not copied into the project):
# the base model, then the adapter extended to 1001 classes in both spellings. Skips (77)
# when ../shared is absent.
set -euo pipefail
bin=$1 g=$2/deit_tiny_random
[ -d "$g" ] || { echo "skip: $g is absent"; exit 77; }
"$bin" check "$g" "$g/io.safetensors"
for a in adapter adapter_v4; do
  "$bin" check "$g" "$g/io.safetensors" --adapter "$g/$a" --labels 1000,1000
done
