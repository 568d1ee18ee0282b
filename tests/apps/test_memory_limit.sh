#!/usr/bin/env bash
# Allocation failures are reported, not crashed on: a PNG and a JPEG whose pixels do not fit under a
# memory limit (ulimit -v) give exit 2 and "out of memory decoding"; with room they decode. Not run
# in sanitizer builds (their runtime reserves more address space than any such limit).
set -u
bin=$1 model=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
python3 - "$tmp/big.png" <<'PY'
import struct, sys, zlib
W = H = 9000  # 243 MB of pixels from a 236 kB file
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
raw = zlib.compress(b"".join(b"\0" + bytes(W * 3) for _ in range(H)), 9)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)) +
                              chunk(b"IDAT", raw) + chunk(b"IEND", b""))
PY
msg=$( (ulimit -v 400000; "$bin" predict --model "$model" "$tmp/big.png") 2>&1 >/dev/null); rc=$?
ok "PNG under 400 MB: exit 2 with a message (exit $rc: $msg)" '[ $rc -eq 2 ] && [[ "$msg" == *"big.png: out of memory decoding the PNG"* ]]'
msg=$( (ulimit -v 1500000; "$bin" predict --model "$model" "$tmp/big.png") 2>&1 >/dev/null); rc=$?
ok "PNG under 1.5 GB: decoded (exit $rc: $msg)" '[ $rc -eq 0 ]'
if /usr/bin/python3 -c "from PIL import Image; Image.new('RGB', (9000, 9000)).save('$tmp/big.jpg', quality=50)" 2>/dev/null; then
    msg=$( (ulimit -v 250000; "$bin" predict --model "$model" "$tmp/big.jpg") 2>&1 >/dev/null); rc=$?
    ok "JPEG under 250 MB: exit 2 with a message (exit $rc: $msg)" '[ $rc -eq 2 ] && [[ "$msg" == *"big.jpg: out of memory decoding the JPEG"* ]]'
else
    echo "skip: the JPEG case needs python3-pil"
fi
echo "memory limit: $pass passed, $fail failed"
[ "$fail" = 0 ]
