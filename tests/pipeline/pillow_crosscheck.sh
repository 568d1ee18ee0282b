#!/usr/bin/env bash
# Runs pillow_crosscheck.py on ../shared/data/raccoons; skips (77) without python3-pil/numpy or the photos.
set -euo pipefail
bin=$1 shared=$2
py=/usr/bin/python3
$py -c "import PIL, numpy" 2>/dev/null || { echo "skip: python3-pil / python3-numpy not installed"; exit 77; }
[ -d "$shared/data/raccoons" ] || { echo "skip: $shared/data/raccoons is absent"; exit 77; }
$py "$(dirname "$0")/pillow_crosscheck.py" "$bin" "$shared/golden/deit_tiny_random" "$shared"/data/raccoons/*.jpg
