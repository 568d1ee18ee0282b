"""The tensors of several safetensors files in one (the first file's metadata dropped; names must not repeat).
Usage: st_bundle.py OUT IN..."""
import json, struct, sys

hdr, blobs, off = {}, [], 0
for path in sys.argv[2:]:
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    for k, v in json.loads(raw[8:8 + n]).items():
        if k == "__metadata__":
            continue
        if k in hdr:
            raise SystemExit("%s: %s is in an earlier file too" % (path, k))
        hdr[k] = dict(v, data_offsets=[off + o for o in v["data_offsets"]])
    blobs.append(raw[8 + n:])
    off += len(raw) - 8 - n
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
