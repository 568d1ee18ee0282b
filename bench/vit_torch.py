"""A DeiT-Tiny-sized ViT in plain PyTorch, written as transformers' ViT computes it (GELU exact, LayerNorm
eps 1e-12), with random weights of a trained model's scale, and its safetensors files under Hugging Face's
ViTForImageClassification names (which deit_lora loads). Imported by ort_export.py and int8_torch.py."""
import json, math, struct
import torch
import torch.nn as nn
import torch.nn.functional as F

D, L, H, FF, S, P, CLASSES = 192, 12, 3, 768, 224, 16, 1000


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D, eps=1e-12), nn.LayerNorm(D, eps=1e-12)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(D, FF), nn.Linear(FF, D)

    def forward(self, h):
        B, T, _ = h.shape
        y = self.ln1(h)
        q, k, v = (m(y).view(B, T, H, D // H).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), -1)
        h = h + self.o((a @ v).transpose(1, 2).reshape(B, T, D))
        return h + self.fc2(F.gelu(self.fc1(self.ln2(h))))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, D, P, P)
        self.cls = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (S // P) ** 2 + 1, D) * 0.02)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.ln = nn.LayerNorm(D, eps=1e-12)
        self.head = nn.Linear(D, CLASSES)

    def forward(self, x):
        p = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(x.shape[0], -1, -1), p], 1) + self.pos
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h)[:, 0])


def hf_names(m):
    """the state_dict under transformers' ViTForImageClassification names"""
    out = {"vit.embeddings.cls_token": m.cls, "vit.embeddings.position_embeddings": m.pos,
           "vit.embeddings.patch_embeddings.projection.weight": m.patch.weight,
           "vit.embeddings.patch_embeddings.projection.bias": m.patch.bias,
           "vit.layernorm.weight": m.ln.weight, "vit.layernorm.bias": m.ln.bias,
           "classifier.weight": m.head.weight, "classifier.bias": m.head.bias}
    for i, b in enumerate(m.blocks):
        p = "vit.encoder.layer.%d." % i
        for name, mod in (("attention.attention.query", b.q), ("attention.attention.key", b.k), ("attention.attention.value", b.v),
                          ("attention.output.dense", b.o), ("intermediate.dense", b.fc1), ("output.dense", b.fc2),
                          ("layernorm_before", b.ln1), ("layernorm_after", b.ln2)):
            out[p + name + ".weight"], out[p + name + ".bias"] = mod.weight, mod.bias
    return out


def save_safetensors(path, tensors):
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(tensors):
        b = tensors[k].detach().contiguous().float().numpy().tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))



def make_model(seed=0):
    """the model ort_export.py writes: seeded, LayerNorm scales near 1 and small biases as in a trained model"""
    torch.manual_seed(seed)
    m = ViT().eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.uniform_(0.8, 1.2)
            elif name.endswith("bias"):
                p.uniform_(-0.05, 0.05)
    return m


def load_safetensors(path):
    """{name: float32 tensor} of a safetensors file (F32 tensors only)"""
    return parse_safetensors(open(path, "rb").read(), path)


def parse_safetensors(raw, path="<stdin>"):
    """{name: float32 tensor} of a safetensors file's bytes"""
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            raise SystemExit("%s: %s is %s, not F32" % (path, k, v["dtype"]))
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(v["shape"])
    return out


def load_model(w):
    """the model with the weights w ({name: tensor} under the names hf_names gives)"""
    m = ViT().eval()
    with torch.no_grad():
        for k, p in hf_names(m).items():
            p.copy_(w[k])
    return m
