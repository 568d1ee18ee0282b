"""Writes small images in unusual but valid modes and Pillow's convert("RGB") of each into
expected.safetensors (the test data for tests/pipeline/test_image.c). Run with Debian's python3-pil
and python3-numpy: python3 make_modes.py (from this folder)."""
import json, struct
import numpy as np
from PIL import Image

rng = np.random.default_rng(7)
W, H = 37, 23


def arr(c, dtype=np.uint8, hi=256):
    return rng.integers(0, hi, size=(H, W, c) if c > 1 else (H, W), dtype=np.int64).astype(dtype)


imgs = {}
Image.fromarray(arr(4), "CMYK").save("cmyk.jpg", quality=90)
Image.fromarray(arr(1)).save("progressive_grey.jpg", progressive=True, quality=85)
g16 = arr(1, np.uint16, 700)  # values above 255 saturate in Pillow's I;16 -> RGB
Image.fromarray(g16).save("grey16.png")
# 16-bit RGB / RGBA / LA are written by hand: Pillow cannot save them
import zlib


def png(path, w, h, ctype, depth, rows, extra=b"", interlace=0):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)) +
                extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


r16 = arr(3, np.uint16, 65536)
png("rgb16.png", W, H, 2, 16, [r16[y].astype(">u2").tobytes() for y in range(H)])
ra16 = arr(4, np.uint16, 65536)
png("rgba16.png", W, H, 6, 16, [ra16[y].astype(">u2").tobytes() for y in range(H)])
la = arr(2)
png("la.png", W, H, 4, 8, [la[y].tobytes() for y in range(H)])
pal = Image.fromarray(arr(1, hi=16), "L").convert("P")
pal.putpalette(list(rng.integers(0, 256, 48)))
pal.info["transparency"] = 3
pal.save("palette_trns.png", transparency=3)
gt = Image.fromarray(arr(1))
gt.save("grey_trns.png", transparency=17)
il = arr(3)
# Adam7: seven passes, each a small image of its own rows with filter byte 0
passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
rows = []
for x0, y0, dx, dy in passes:
    sub = il[y0::dy, x0::dx]
    if sub.size:
        rows += [sub[y].tobytes() for y in range(sub.shape[0])]
png("interlaced.png", W, H, 2, 8, rows, interlace=1)
bits = Image.fromarray((arr(1) > 127).astype(np.uint8) * 255).convert("1")
bits.save("bilevel.png")
ex = Image.fromarray(arr(3))
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90; Pillow does not apply it unless asked
ex.save("exif_rotated.jpg", exif=exif.tobytes())

names = ["cmyk.jpg", "progressive_grey.jpg", "grey16.png", "rgb16.png", "rgba16.png", "la.png", "palette_trns.png",
         "grey_trns.png", "interlaced.png", "bilevel.png", "exif_rotated.jpg"]
tensors = {n: np.array(Image.open(n).convert("RGB")) for n in names}
hdr, blobs, off = {}, [], 0
for k in sorted(tensors):
    b = tensors[k].tobytes()
    hdr[k] = {"dtype": "U8", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open("expected.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print({n: Image.open(n).mode for n in names})
