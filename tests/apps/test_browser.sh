#!/usr/bin/env bash
# The serve page in headless chromium (browser_test.py): a result, the keyboard, axe-core's checks;
# skips without chromium, chromedriver or libmicrohttpd. The screenshot goes to OUT (the build folder's serve_page.png).
set -uo pipefail
bin=$1 data=$2 out=$3
if "$bin" serve 2>&1 | grep -q "without libmicrohttpd"; then echo "skip: deit_lora was built without libmicrohttpd"; exit 77; fi
# axe-core (npm) for the accessibility checks, installed beside the screenshot once; without npm
# or the registry those checks are skipped, said so
axe=$(dirname "$out")/npm/node_modules/axe-core/axe.min.js
if [ ! -s "$axe" ] && command -v npm >/dev/null; then
    timeout 120 npm install --silent --no-save --prefix "$(dirname "$out")/npm" axe-core@4 >/dev/null 2>&1 || true
fi
exec env AXE_JS="$axe" python3 "$(dirname "$0")/browser_test.py" "$bin" "$data/golden/tiny" "$data/golden/images/gradient_400x300.jpg" "$out"
