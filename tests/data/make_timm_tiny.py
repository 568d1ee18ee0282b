"""Writes timm_tiny/: golden/tiny's weights in timm's layout (names renamed, query/key/value fused into
attn.qkv) with a timm config.json, for the tests of timm directories. Pure Python; run from tests/data."""
import json, os, struct


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    return {k: (v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}


def save(t, path):
    hdr, blobs, off = {}, [], 0
    for k in sorted(t):
        shape, b = t[k]
        hdr[k] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


w = load("golden/tiny/model.safetensors")
top = {"vit.embeddings.cls_token": "cls_token", "vit.embeddings.position_embeddings": "pos_embed",
       "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
       "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias", "vit.layernorm.weight": "norm.weight",
       "vit.layernorm.bias": "norm.bias", "classifier.weight": "head.weight", "classifier.bias": "head.bias"}
block = {"layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
         "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
out = {}
for k, v in w.items():
    if k in top:
        out[top[k]] = v
        continue
    i = k.split(".")[3]
    rest = ".".join(k.split(".")[4:])
    mod, kind = rest.rsplit(".", 1)
    if mod in block:
        out[f"blocks.{i}.{block[mod]}.{kind}"] = v
for i in range(2):
    for kind in ("weight", "bias"):
        parts = [w[f"vit.encoder.layer.{i}.attention.attention.{m}.{kind}"] for m in ("query", "key", "value")]
        shape = [3 * parts[0][0][0]] + parts[0][0][1:]
        out[f"blocks.{i}.attn.qkv.{kind}"] = (shape, b"".join(p[1] for p in parts))
os.makedirs("timm_tiny", exist_ok=True)
save(out, "timm_tiny/model.safetensors")
json.dump({"architecture": "vit_tiny_patch8_32", "num_classes": 10, "num_features": 48, "global_pool": "token",
           "model_args": {"num_heads": 3},
           "pretrained_cfg": {"input_size": [3, 32, 32], "fixed_input_size": True, "interpolation": "bicubic", "crop_pct": 0.9,
                              "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 10,
                              "first_conv": "patch_embed.proj", "classifier": "head"}}, open("timm_tiny/config.json", "w"), indent=2)
print("wrote timm_tiny/ with", len(out), "tensors")
