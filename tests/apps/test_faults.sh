#!/usr/bin/env bash
# Faults during training: kill -9 at random moments then --resume (several runs), SIGINT and
# SIGTERM (exit 130 after a checkpoint, then --resume), a full disk (a small tmpfs; skipped where
# mounting is not allowed). Each resumed run must end with the uninterrupted run's adapter, bit for bit.
set -u
bin=$1 data=$2
tmp=$(mktemp -d)
cleanup() { mountpoint -q "$tmp/full" 2>/dev/null && umount "$tmp/full"; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
args=(--model "$data/golden/tiny" --data "$data/golden/images" --label thing --test-size 0 --batch-size 2 --grad-accum 1
      --epochs 60 --save-steps 1 --save-total-limit 2 --lora-dropout 0.2 --seed 3 --quiet --logging-steps 10 --threads 2)
t0=$(date +%s%N)
"$bin" train "${args[@]}" --output "$tmp/ref" >/dev/null 2>&1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "the uninterrupted run" '[ -f "$tmp/ref/adapter_model.safetensors" ]'

finish() { # resume OUT until it completes (a run killed before its first checkpoint starts over)
    local out=$1 tries=0
    while [ $tries -lt 5 ]; do
        tries=$((tries + 1))
        if ls -d "$out"/checkpoint-* >/dev/null 2>&1; then "$bin" train "${args[@]}" --output "$out" --resume >/dev/null 2>&1 && return 0
        else "$bin" train "${args[@]}" --output "$out" --overwrite >/dev/null 2>&1 && return 0; fi
    done
    return 1
}

for k in 1 2 3 4 5; do
    out="$tmp/kill$k"
    "$bin" train "${args[@]}" --output "$out" >/dev/null 2>&1 &
    pid=$!
    delay=$(awk -v s=$RANDOM -v ms="$ms" 'BEGIN { srand(s); printf "%.3f", (0.1 + 0.8 * rand()) * ms / 1000 }')
    sleep "$delay"
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    # whatever the moment, every checkpoint folder left is complete (no half-written files in it)
    for c in "$out"/checkpoint-*; do
        [ -d "$c" ] || continue
        ok "kill $k: $c is complete" '[ -f "$c/trainer_state.json" ] && [ -f "$c/adapter_model.safetensors" ] && [ -f "$c/optimizer.safetensors" ]'
    done
    ok "kill $k (after ${delay}s): resumed to the end" 'finish "$out"'
    ok "kill $k: the final adapter equals the uninterrupted run's" 'cmp -s "$out/adapter_model.safetensors" "$tmp/ref/adapter_model.safetensors"'
done

for sig in INT TERM; do
    out="$tmp/sig$sig"
    "$bin" train "${args[@]}" --output "$out" >"$tmp/sig.log" 2>&1 &
    pid=$!
    sleep "$(awk -v ms="$ms" 'BEGIN { printf "%.3f", 0.5 * ms / 1000 }')"
    kill -$sig $pid; wait $pid; rc=$?
    ok "SIG$sig: exit 130 (got $rc)" '[ $rc -eq 130 ] || [ $rc -eq 0 ]'
    ok "SIG$sig: says how to continue" '[ $rc -eq 0 ] || grep -q "continue with --resume" "$tmp/sig.log"'
    ok "SIG$sig: resumed to the end" 'finish "$out"'
    ok "SIG$sig: the final adapter equals the uninterrupted run's" 'cmp -s "$out/adapter_model.safetensors" "$tmp/ref/adapter_model.safetensors"'
done

# two runs into one folder: the second is refused, naming the first's process; kill -9 leaves no stale lock
out="$tmp/lock"
"$bin" train "${args[@]}" --output "$out" >/dev/null 2>&1 &
pid=$!
for i in $(seq 200); do [ -f "$out/.deit_lora.lock" ] && break; sleep 0.02; done
msg=$("$bin" train "${args[@]}" --output "$out" --overwrite 2>&1 >/dev/null); rc=$?
if kill -0 $pid 2>/dev/null; then
    ok "lock: a second run is refused with the holder's process id (exit $rc: $msg)" \
        '[ $rc -eq 2 ] && [[ "$msg" == *"is in use by another deit_lora run (process $pid holds"* ]]'
    kill -9 $pid; wait $pid 2>/dev/null
    ok "lock: kill -9 leaves no stale lock (resumed to the end)" 'finish "$out"'
    ok "lock: the final adapter equals the uninterrupted run's" 'cmp -s "$out/adapter_model.safetensors" "$tmp/ref/adapter_model.safetensors"'
    ok "lock: a finished run removes its lock file" '[ ! -e "$out/.deit_lora.lock" ]'
else
    wait $pid; echo "skip: the first run ended before the second started"
fi

# a full disk: about three checkpoints fit; the failure is reported and earlier checkpoints stay usable
mkdir -p "$tmp/full"
if mount -t tmpfs -o size=110k tmpfs "$tmp/full" 2>/dev/null; then
    "$bin" train "${args[@]}" --output "$tmp/full/out" >"$tmp/full.log" 2>&1; rc=$?
    ok "full disk: exit non-zero (got $rc)" '[ $rc -ne 0 ]'
    ok "full disk: the message names the file and the cause" 'grep -q "No space left on device" "$tmp/full.log" && grep -q "$tmp/full/out" "$tmp/full.log"'
    last=$(ls -d "$tmp/full/out"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
    ok "full disk: an earlier checkpoint is intact" '[ -n "$last" ] && [ -f "$last/trainer_state.json" ]'
    cp -r "$tmp/full/out" "$tmp/after_full"
    umount "$tmp/full"
    rm -rf "$tmp/after_full"/.checkpoint-*.tmp
    ok "full disk: resumed elsewhere to the end" '"$bin" train "${args[@]}" --output "$tmp/after_full" --resume >/dev/null 2>&1'
    ok "full disk: the final adapter equals the uninterrupted run's" 'cmp -s "$tmp/after_full/adapter_model.safetensors" "$tmp/ref/adapter_model.safetensors"'
    # merge and convert-adapter on a full disk: exit 3, and no half-written output folder
    mount -t tmpfs -o size=40k tmpfs "$tmp/full"
    "$bin" merge --model "$data/golden/tiny" --adapter "$tmp/ref" --output "$tmp/full/merged" >/dev/null 2>"$tmp/merge.log"; rc=$?
    ok "full disk: merge exits 3 (got $rc)" '[ $rc -eq 3 ] && grep -q "No space left on device" "$tmp/merge.log"'
    ok "full disk: merge leaves no output folder" '[ ! -e "$tmp/full/merged" ] && [ -z "$(ls -A "$tmp/full")" ]'
    dd if=/dev/zero of="$tmp/full/filler" bs=1k count=36 2>/dev/null
    "$bin" convert-adapter "$tmp/ref" "$tmp/full/v5" --to v5 >/dev/null 2>"$tmp/conv.log"; rc=$?
    ok "full disk: convert-adapter exits 3 (got $rc)" '[ $rc -eq 3 ]'
    ok "full disk: convert-adapter leaves no output folder" '[ ! -e "$tmp/full/v5" ] && [ "$(ls -A "$tmp/full")" = filler ]'
    umount "$tmp/full"
else
    echo "skip: cannot mount a tmpfs here (not root?); the full-disk case was not run"
fi
echo "faults: $pass passed, $fail failed"
[ "$fail" = 0 ]
