"""safetensors for the test scripts, read without the safetensors package (not in Debian 12):
load(path) gives {name: torch tensor} for F32, F64, I64 and U8 entries."""
import json, struct

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
    return out
