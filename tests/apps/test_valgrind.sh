#!/usr/bin/env bash
# valgrind finds no definite leaks and no invalid accesses in predict, explain and a short train.
# Needs a build valgrind can execute: no -march=native (AVX-512) and a BLAS without AVX-512
# kernels (quickstart.sh test: -Dportable=true -Dblas=generic, the reference BLAS first on
# LD_LIBRARY_PATH). Skips (77) without valgrind, and in sanitizer builds.
set -u
bin=$1 data=$2
command -v valgrind >/dev/null || { echo "skip: valgrind is not installed"; exit 77; }
ldd "$bin" | grep -q libasan && { echo "skip: sanitizer build"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --track-origins=no)
pass=0 fail=0
run() {
    local name=$1; shift
    if OMP_NUM_THREADS=2 "${vg[@]}" "$@" >"$tmp/out" 2>"$tmp/err"; then pass=$((pass + 1))
    else fail=$((fail + 1)); echo "FAIL: $name"; tail -40 "$tmp/err"; fi
}
run "predict" "$bin" predict --model "$data/golden/tiny" --adapter "$data/golden/tiny_lora" --top 3 "$data/golden/images/small_20x30.jpg" "$data/golden/images/palette_120x90.png"
run "train" "$bin" train --model "$data/golden/tiny" --data "$data/golden/images" --label thing --output "$tmp/out1" --test-size 2 \
    --epochs 1 --batch-size 2 --quiet
run "explain" "$bin" explain --model "$data/golden/tiny" --adapter "$data/golden/tiny_lora" --method relevance --out "$tmp/maps" \
    "$data/golden/images/small_20x30.jpg" "$data/golden/images/palette_120x90.png"
run "a refused input" sh -c "! \"$bin\" predict --model \"$data/golden/tiny\" \"$data/bad/images/truncated.png\""
echo "valgrind: $pass passed, $fail failed"
[ "$fail" = 0 ]
