#!/usr/bin/env bash
# Builds each fuzz target with clang's libFuzzer under AddressSanitizer and UBSan and runs it for
# SECONDS (default 15) on its seed corpus (the project's test data). Skips without clang/libFuzzer.
#   fuzz/run.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
command -v clang >/dev/null || { echo "fuzz: skipped (no clang)"; exit 0; }
out=build-fuzz
mkdir -p "$out"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' > "$out/probe.c"
if ! clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>/dev/null; then echo "fuzz: skipped (clang has no libFuzzer: apt-get install libclang-rt-14-dev)"; exit 0; fi
src=$(ls base/*.c kernels/*.c tensor/*.c formats/*.c autograd/*.c nn/*.c data/*.c models/*.c)
flags="-O1 -g -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp"
libs="$(pkg-config --cflags --libs openblas libpng libjpeg libcjson zlib libpcre2-8) -lm"
D=tests/data
declare -A seeds=(
  [safetensors]="$D/golden/tiny_lora/adapter_model.safetensors $D/golden/tiny_lora/adapter_v4 $D/bad"
  [pickle]="$D/golden/tiny/pytorch_model.bin $D/bad/bin_foreign_global $D/bad/bin_bad_opcode $D/bad/bin_broken_zip"
  [config]="$D/golden/tiny/config.json $D/golden/tiny_lora/adapter_config.json $D/bad/cfg_wrong_type $D/bad/pre_size $D/bad/adapter_regex $D/bad/adapter_regex_python $D/bad/adapter_regex_classifier"
  [image]="$D/images $D/bad/images $D/golden/images/small_20x30.jpg $D/golden/images/palette_120x90.png"
  [request]="$D/requests"
  [http]="$D/http"
)
declare -A extra=([request]="apps/serve_request.c" [http]="apps/serve_http.c")
# the library once, instrumented, into an archive
objflags=${flags/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}
rm -f "$out"/lib/*.o "$out/libcgrad_fuzz.a"
mkdir -p "$out/lib"
if ! printf '%s\n' $src | xargs -P "$(nproc)" -I{} sh -c 'clang '"$objflags"' $(pkg-config --cflags openblas) -c {} -o '"$out"'/lib/$(echo {} | tr / _).o' 2>"$out/lib.build.log"; then
  echo "fuzz: the library did not build (see $out/lib.build.log)"; echo "fuzz: 0 passed, 6 failed"; exit 1
fi
ar rcs "$out/libcgrad_fuzz.a" "$out"/lib/*.o
pass=0 fail=0
for t in safetensors pickle config image request http; do
  if ! clang $flags -o "$out/fuzz_$t" "fuzz/fuzz_$t.c" ${extra[$t]:-} "$out/libcgrad_fuzz.a" $libs 2>"$out/$t.build.log"; then
    echo "fuzz_$t: build failed (see $out/$t.build.log)"; fail=$((fail + 1)); continue
  fi
  corpus="$out/corpus_$t"; mkdir -p "$corpus"
  for s in ${seeds[$t]}; do
    if [ -d "$s" ]; then find "$s" -type f -size -2M -exec cp -n {} "$corpus/" \; 2>/dev/null; else cp -n "$s" "$corpus/" 2>/dev/null; fi
  done
  if ASAN_OPTIONS=detect_leaks=1 "$out/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=300000 -timeout=10 \
       "$corpus" >"$out/$t.log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$out/$t.log" | tail -1), no crash"; pass=$((pass + 1))
  else
    echo "fuzz_$t: FAILED, see $out/$t.log and the crash-* file in $(pwd)"; tail -30 "$out/$t.log"; fail=$((fail + 1))
  fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
