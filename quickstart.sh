#!/usr/bin/env bash
# quickstart.sh: set up a fresh Debian/Ubuntu machine, build cgrad, and run the main job or the tests.
#   ./quickstart.sh demo   install what is missing, build, run the main job (deit_lora demo)
#   ./quickstart.sh test   install what is missing, build, run the whole test suite
#                          (a release build and an AddressSanitizer + UBSan build)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES="gcc meson ninja-build pkg-config python3 libopenblas-dev libpng-dev libjpeg-dev zlib1g-dev libcjson-dev libpcre2-dev check dataset-fashion-mnist libopenmpi-dev openmpi-bin libmicrohttpd-dev"
# the test suite also checks the C sources' format (clang-format), cross-checks image decoding against Pillow (python3-pil, python3-numpy)
# and fuzzes the parsers with clang's libFuzzer; valgrind checks for leaks; headless chromium
# drives the serve page
TEST_PACKAGES="python3-pil python3-numpy clang clang-format libclang-rt-14-dev valgrind libblas-dev chromium chromium-driver cmake"

install_missing() {
    local missing=()
    for p in $PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "quickstart: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() { # build DIR [meson options...]
    local dir=$1; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
    ninja -C "$dir" >/dev/null
}

run_tests() { # run_tests DIR LABEL: meson test, then count Check's results from the log
    local dir=$1 label=$2 rc=0
    meson test -C "$dir" --print-errorlogs --num-processes 2 >"$dir/test-summary.txt" 2>&1 || rc=$?
    grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout|Skipped):" "$dir/test-summary.txt" | sed "s/^/[$label] /"
    [ $rc -ne 0 ] && sed -n '/stdout:/,$p' "$dir/test-summary.txt" | head -60
    python3 - "$dir/meson-logs/testlog.json" >>"$COUNTS" <<'PY'
import json, re, sys
passed = failed = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout", "")
    plain = re.findall(r"^(?:\w+: )?(\d+) passed, (\d+) failed", out, re.M)
    if plain:  # a script's own count
        for p, f in plain:
            passed += int(p); failed += int(f)
        if t["result"] not in ("OK", "EXPECTEDFAIL") and not any(int(f) for _, f in plain):
            failed += 1
        continue
    m = re.findall(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)
    if m:
        for n, f, e in m:
            passed += int(n) - int(f) - int(e); failed += int(f) + int(e)
        if t["result"] not in ("OK", "EXPECTEDFAIL") and not any(int(f) + int(e) for _, f, e in m):
            failed += 1  # crashed or timed out after Check's summary
    elif t["result"] == "SKIP":
        pass
    elif t["result"] in ("OK", "EXPECTEDFAIL"):
        passed += 1
    else:
        failed += 1
print(passed, failed)
PY
    return $rc
}

case "${1:-}" in
demo)
    install_missing
    build build
    ./build/apps/deit_lora demo
    ;;
test)
    install_missing $TEST_PACKAGES
    COUNTS=$(mktemp)
    rc=0
    # the house style: every C source as .clang-format writes it
    fmt_bad=0
    for f in $(git ls-files '*.c' '*.h' '*.inc' 2>/dev/null || find . -name '*.[ch]' -o -name '*.inc'); do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || { echo "format: $f is not as .clang-format writes it (clang-format -i $f)"; fmt_bad=$((fmt_bad + 1)); }
    done
    [ $fmt_bad -eq 0 ] && echo "1 0" >>"$COUNTS" || { echo "0 1" >>"$COUNTS"; rc=1; }
    build build
    run_tests build release || rc=1
    build build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_tests build-asan sanitizers || rc=1
    # valgrind cannot run AVX-512: a portable build on the reference BLAS for it
    build build-valgrind -Dbuildtype=debugoptimized -Dportable=true -Dblas=generic -Dtests=false
    LD_LIBRARY_PATH=/usr/lib/$(gcc -print-multiarch)/blas tests/apps/test_valgrind.sh build-valgrind/apps/deit_lora tests/data \
        | tee build/valgrind.log | tail -3 || rc=1
    sed -n 's/^valgrind: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' build/valgrind.log >>"$COUNTS"
    fuzz/run.sh "${CGRAD_FUZZ_SECONDS:-15}" | tee build/fuzz.log | grep -v "^ " || rc=1
    sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' build/fuzz.log >>"$COUNTS"
    awk '{p += $1; f += $2} END {printf "%d passed, %d failed\n", p, f}' "$COUNTS"
    rm -f "$COUNTS"
    exit $rc
    ;;
*)
    echo "usage: ./quickstart.sh demo|test" >&2
    exit 2
    ;;
esac
