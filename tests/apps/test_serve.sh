#!/usr/bin/env bash
# deit_lora serve on a free port of 127.0.0.1 (serve_test.py: exact answers, bad requests, load,
# a stalled client, SIGTERM), then serve_slow_test.py (slowloris crowds, the whole-request deadline), serve_framing_test.py (malformed heads and framing). Skips when deit_lora was built without libmicrohttpd.
set -uo pipefail
bin=$1 data=$2
if "$bin" serve 2>&1 | grep -q "without libmicrohttpd"; then echo "skip: deit_lora was built without libmicrohttpd"; exit 77; fi
rc=0
python3 "$(dirname "$0")/serve_test.py" "$bin" "$data" || rc=1
python3 "$(dirname "$0")/serve_slow_test.py" "$bin" "$data" || rc=1
python3 "$(dirname "$0")/serve_framing_test.py" "$bin" "$data" || rc=1
exit $rc
