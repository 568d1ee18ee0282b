"""A reference reader of TensorBoard event files, independent of cgrad's writer: the record framing
(length, masked CRC-32C, data, masked CRC-32C, every CRC checked), the Event and Summary protobuf
messages decoded field by field. Prints the file version and every scalar as "tag step value", one
a line; exit 1 on anything malformed.   Usage: tfevents_read.py FILE"""
import struct, sys


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def fields(buf):
    """(field number, wire type, value) of a protobuf message"""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def varint(buf, i):
    v = s = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return v, i


data = open(sys.argv[1], "rb").read()
i = 0
while i < len(data):
    hdr = data[i:i + 8]
    (n,) = struct.unpack("<Q", hdr)
    (lc,) = struct.unpack("<I", data[i + 8:i + 12])
    if lc != masked(hdr):
        sys.exit("bad length CRC at %d" % i)
    ev = data[i + 12:i + 12 + n]
    (dc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
    if len(ev) != n or dc != masked(ev):
        sys.exit("bad data CRC at %d" % i)
    i += 16 + n
    step = 0
    for f, wt, v in fields(ev):
        if f == 2:
            step = v
        elif f == 3:
            print("file_version", v.decode())
        elif f == 5:
            for sf, _, sv in fields(v):
                tag, val = None, None
                for vf, vwt, vv in fields(sv):
                    if vf == 1:
                        tag = vv.decode()
                    elif vf == 2 and vwt == 5:
                        (val,) = struct.unpack("<f", vv)
                print(tag, step, repr(val))
