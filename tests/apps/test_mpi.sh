#!/usr/bin/env bash
# Data parallelism over MPI on localhost: mpirun -np 2 deit_lora train gives the single process's
# adapter (within 1e-5 relative: only the order of sums differs) and its log; --resume works under
# MPI; a killed rank ends the run with a message naming it, never a hang; predict and eval print
# what one process prints. Skips (77) without mpirun.
set -u
bin=$1 data=$2
command -v mpirun >/dev/null || { echo "skip: mpirun is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT && echo "keeping $tmp"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { timeout 120 mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$@"; }
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
same_adapter() { # A B: every tensor within 1e-5 of its largest magnitude
    /usr/bin/python3 - "$1/adapter_model.safetensors" "$2/adapter_model.safetensors" <<'PY'
import array, json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        a = array.array("f"); a.frombytes(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]); out[k] = a
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
worst = max(max(abs(x - y) for x, y in zip(a[k], b[k])) / (max(abs(x) for x in a[k]) or 1) for k in a)
print(f"worst relative difference {worst:.3g}")
sys.exit(0 if a.keys() == b.keys() and worst <= 1e-5 else 1)
PY
}
logs() { grep -v "train_runtime\|^saved the adapter" "$1"; }
img=$data/golden/images
args=(--model "$data/golden/tiny" --data "$img" --label thing --test-size 2 --epochs 3 --batch-size 2 --grad-accum 3
      --lora-dropout 0.2 --seed 5 --quiet --logging-steps 1 --save-steps 2 --save-total-limit 0)
OMP_NUM_THREADS=1 "$bin" train "${args[@]}" --output "$tmp/one" >"$tmp/one.log" 2>/dev/null
mpi "$bin" train "${args[@]}" --output "$tmp/two" >"$tmp/two.log" 2>"$tmp/two.err"; rc=$?
ok "train over 2 ranks (exit $rc: $(tail -2 "$tmp/two.err"))" '[ $rc -eq 0 ]'
ok "the adapter of 2 ranks is the single process's" 'same_adapter "$tmp/one" "$tmp/two"'
ok "the same log" 'diff <(logs "$tmp/one.log") <(logs "$tmp/two.log")'
ok "rank 0 alone wrote the outputs" '[ -f "$tmp/two/adapter_model.safetensors" ] && [ ! -e "$tmp/two/.deit_lora.lock" ]'
# --resume under MPI: from a checkpoint of the run above's settings, to the same end
rm -rf "$tmp/two/checkpoint-3" "$tmp/two/adapter_model.safetensors"
mpi "$bin" train "${args[@]}" --output "$tmp/two" --resume >"$tmp/resume.log" 2>&1; rc=$?
ok "--resume over 2 ranks (exit $rc)" '[ $rc -eq 0 ] && grep -q "resuming from" "$tmp/resume.log"'
ok "the resumed adapter is the single process's" 'same_adapter "$tmp/one" "$tmp/two"'
# predict and eval split the images and print what one process prints
imgs=("$img"/*.jpg "$img"/*.png)
"$bin" predict --model "$data/golden/tiny" --adapter "$tmp/one" --json "${imgs[@]}" >"$tmp/p1" 2>/dev/null
mpi "$bin" predict --model "$data/golden/tiny" --adapter "$tmp/one" --json "${imgs[@]}" >"$tmp/p2" 2>/dev/null
ok "predict over 2 ranks prints the single process's lines in order" 'cmp -s "$tmp/p1" "$tmp/p2" && [ -s "$tmp/p1" ]'
"$bin" eval --model "$data/golden/tiny" --adapter "$tmp/one" --data "$img" --label thing --json --batch-size 2 >"$tmp/e1" 2>/dev/null
mpi "$bin" eval --model "$data/golden/tiny" --adapter "$tmp/one" --data "$img" --label thing --json --batch-size 2 >"$tmp/e2" 2>/dev/null
ok "eval over 2 ranks gives the single process's metrics" 'cmp -s "$tmp/e1" "$tmp/e2" && [ -s "$tmp/e1" ]'
mkdir "$tmp/mixed" && cp "${imgs[@]}" "$tmp/mixed/" && echo notes >"$tmp/mixed/readme.txt"
mpi "$bin" eval --model "$data/golden/tiny" --adapter "$tmp/one" --data "$tmp/mixed" --label thing --batch-size 2 >/dev/null 2>"$tmp/mixed.err"; rc=$?
ok "a file that is not an image is reported once, not by every rank (exit $rc)" \
   '[ $rc -eq 0 ] && [ "$(grep -c "readme.txt: not a JPEG or PNG image, skipped" "$tmp/mixed.err")" -eq 1 ]'
mpi "$bin" predict --model "$data/golden/tiny" "${imgs[0]}" "$tmp/missing.png" >/dev/null 2>"$tmp/bad.err"; rc=$?
ok "a bad image under MPI: exit non-zero with its name (exit $rc)" '[ $rc -ne 0 ] && grep -q "missing.png: cannot open" "$tmp/bad.err"'
mpi "$bin" info "$data/golden/tiny" >/dev/null 2>"$tmp/info.err"; rc=$?
ok "a command that does not run over ranks is refused (exit $rc)" '[ $rc -ne 0 ] && grep -q "does not run over MPI ranks" "$tmp/info.err"'
# a killed rank: the others stop, with a message naming it, within a bounded time
long=(--model "$data/golden/tiny" --data "$img" --label thing --test-size 0 --epochs 100000 --save-steps 1000000 --batch-size 2
      --quiet --logging-steps 0 --output "$tmp/kill")
mpi "$bin" train "${long[@]}" >/dev/null 2>"$tmp/kill.err" &
runner=$!
victim=""
for i in $(seq 100); do
    victim=$(pgrep -f "^$bin train .*$tmp/kill" | sort -n | tail -1) # a rank, not mpirun
    [ -n "$victim" ] && [ "$(pgrep -f "^$bin train .*$tmp/kill" | wc -l)" -ge 2 ] && break
    sleep 0.1
done
sleep 1
t0=$(date +%s)
kill -9 "$victim" 2>/dev/null
wait $runner; rc=$?
took=$(( $(date +%s) - t0 ))
ok "a killed rank ends the run (exit $rc) within 30 s (took $took s)" '[ $rc -ne 0 ] && [ $took -le 30 ]'
ok "the message names the rank" 'grep -q "process rank [01] .* exited on signal 9" "$tmp/kill.err"'
# ranks that would train different things are refused at start, naming the first difference, with
# one message (rank 0's), nothing written, within a bounded time: never a hang, never a mixed result
short=(--model "$data/golden/tiny" --label thing --test-size 0 --batch-size 2 --quiet --logging-steps 0)
mpmd() { # mpmd OUT "ARGS OF RANK 0" "ARGS OF RANK 1"
    timeout 120 mpirun --oversubscribe -x OMP_NUM_THREADS=1 -np 1 "$bin" train "${short[@]}" --output "$1" $2 : \
        -np 1 "$bin" train "${short[@]}" --output "$1" $3
}
cp -r "$img" "$tmp/img2"
printf 'x' >> "$(ls "$tmp"/img2/*.png | head -1)" # the same names, one file's bytes differ
for case in "--epochs:--data $img --epochs 2:--data $img --epochs 3" "--lr:--data $img --lr 1e-3:--data $img --lr 2e-3" \
            "--seed:--data $img --seed 1:--data $img --seed 2" "the LoRA settings:--data $img --lora-r 2:--data $img --lora-r 4" \
            "the data's contents:--data $img:--data $tmp/img2" "--label:--data $img:--data $img --label other"; do
    IFS=: read -r what a0 a1 <<<"$case"
    out="$tmp/mm$RANDOM"
    t0=$(date +%s)
    mpmd "$out" "$a0" "$a1" >/dev/null 2>"$tmp/mm.err"; rc=$?
    took=$(( $(date +%s) - t0 ))
    ok "ranks differing in $what: refused (exit $rc, $took s), named once, nothing written" \
       '[ $rc -ne 0 ] && [ $took -le 60 ] && [ "$(grep -c "the MPI ranks do not train the same thing: $what" "$tmp/mm.err")" -eq 1 ] && [ ! -e "$out" ]'
done
[ $fail -gt 0 ] && cat "$tmp/mm.err" | head -5
# an error that every rank hits is said once (by rank 0); one that a single rank hits, by that rank
mpi "$bin" train --modle x >/dev/null 2>"$tmp/all.err"; rc=$?
ok "an error on every rank: said once (exit $rc)" '[ $rc -ne 0 ] && [ "$(grep -c "unknown option" "$tmp/all.err")" -eq 1 ]'
timeout 120 mpirun --oversubscribe -x OMP_NUM_THREADS=1 -np 1 "$bin" train "${short[@]}" --data "$img" --output "$tmp/one_bad" : \
    -np 1 "$bin" train "${short[@]}" --data "$img" --model "$tmp/nowhere" --output "$tmp/one_bad" >/dev/null 2>"$tmp/one.err"; rc=$?
ok "an error on rank 1 alone: said by it (exit $rc)" '[ $rc -ne 0 ] && grep -q "$tmp/nowhere: not a directory" "$tmp/one.err"'
# a collective that cannot complete ends the job within a bounded time: one rank stopped (SIGSTOP),
# the other gives up after CGRAD_DIST_TIMEOUT seconds, naming the collective
timeout 120 mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x CGRAD_DIST_TIMEOUT=3 "$bin" train "${long[@]/$tmp\/kill/$tmp/stuck}" \
    >/dev/null 2>"$tmp/stuck.err" &
runner=$!
victim=""
for i in $(seq 100); do
    victim=$(pgrep -f "^$bin train .*$tmp/stuck" | sort -n | tail -1)
    [ -n "$victim" ] && [ "$(pgrep -f "^$bin train .*$tmp/stuck" | wc -l)" -ge 2 ] && break
    sleep 0.1
done
sleep 1
t0=$(date +%s)
kill -STOP "$victim" 2>/dev/null
wait $runner; rc=$?
took=$(( $(date +%s) - t0 ))
kill -9 "$victim" 2>/dev/null
ok "a stopped rank: the other ends the job (exit $rc) within 30 s (took $took s), naming the collective" \
   '[ $rc -ne 0 ] && [ $took -le 30 ] && grep -q "has waited [0-9]* s for the other ranks (CGRAD_DIST_TIMEOUT)" "$tmp/stuck.err"'
echo "mpi: $pass passed, $fail failed"
[ "$fail" = 0 ]
