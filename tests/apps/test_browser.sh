#!/usr/bin/env bash
# The serve page in headless chromium (browser_test.py); skips without chromium, chromedriver or
# libmicrohttpd. The screenshot goes to OUT (the build folder's serve_page.png).
set -uo pipefail
bin=$1 data=$2 out=$3
if "$bin" serve 2>&1 | grep -q "without libmicrohttpd"; then echo "skip: deit_lora was built without libmicrohttpd"; exit 77; fi
exec python3 "$(dirname "$0")/browser_test.py" "$bin" "$data/golden/tiny" "$data/golden/images/gradient_400x300.jpg" "$out"
