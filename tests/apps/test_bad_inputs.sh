#!/usr/bin/env bash
# The bad-input corpus (tests/data/bad/manifest.tsv): every case exits with its code and one
# message containing the expected text, deit_lora never crashes (no signal, no sanitizer report),
# and an output path given as @OUT@ does not exist afterwards (no partial output).
set -u
bin=$1 bad=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$bad"
pass=0 fail=0 k=0
while IFS=$'\t' read -r name code want cmd; do
    [[ "$name" == \#* || -z "$name" ]] && continue
    k=$((k + 1))
    out="$tmp/out$k"
    cmd=${cmd//@BIN@/$bin}
    cmd=${cmd//@OUT@/$out}
    want=${want//@OUT@/$out}
    msg=$(eval "$cmd" 2>&1 >/dev/null); rc=$?
    lines=$(printf '%s\n' "$msg" | grep -v '^warning: ' | grep -c .)
    if [ "$rc" != "$code" ]; then echo "FAIL [$name]: exit $rc, wanted $code: $msg"; fail=$((fail + 1))
    elif [[ "$msg" != *"$want"* ]]; then echo "FAIL [$name]: message '$msg' lacks '$want'"; fail=$((fail + 1))
    elif [ "$lines" -gt 2 ]; then echo "FAIL [$name]: more than one message: $msg"; fail=$((fail + 1))
    elif [[ "$msg" == *Sanitizer* || "$msg" == *"runtime error"* ]]; then echo "FAIL [$name]: sanitizer report: $msg"; fail=$((fail + 1))
    elif [ -e "$out" ]; then echo "FAIL [$name]: left $out behind"; fail=$((fail + 1))
    else pass=$((pass + 1)); fi
done < manifest.tsv
[ -z "$(ls -A out_not_empty | grep -v something.txt)" ] || { echo "FAIL: out_not_empty was written into"; fail=$((fail + 1)); }
echo "bad inputs: $pass passed, $fail failed"
[ "$fail" = 0 ]
