"""A DeiT-Tiny-sized ViT with random weights (seeded), for cgrad against ONNX Runtime: writes DIR/config.json
and DIR/model.safetensors (Hugging Face's ViTForImageClassification names, which deit_lora loads),
DIR/model.onnx (torch.onnx.export, opset 14, a dynamic batch) and DIR/pixel_values.f32 (2 random
images, raw float32). The forward is written as transformers' ViT computes it (GELU exact, LayerNorm
eps 1e-12). Needs Debian's python3-torch.   Usage: ort_export.py DIR"""
import json, math, os, struct, sys
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


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    m = ViT().eval()
    with torch.no_grad():  # weights of a trained model's scale (LayerNorm near 1, small biases)
        for name, p in m.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.uniform_(0.8, 1.2)
            elif name.endswith("bias"):
                p.uniform_(-0.05, 0.05)
    save_safetensors(os.path.join(d, "model.safetensors"), hf_names(m))
    cfg = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": D, "num_hidden_layers": L,
           "num_attention_heads": H, "intermediate_size": FF, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": S,
           "patch_size": P, "num_channels": 3, "qkv_bias": True, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
           "id2label": {str(i): "LABEL_%d" % i for i in range(CLASSES)}, "label2id": {"LABEL_%d" % i: i for i in range(CLASSES)}}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    x = torch.randn(2, 3, S, S)
    open(os.path.join(d, "pixel_values.f32"), "wb").write(x.numpy().tobytes())
    torch.onnx.export(m, x, os.path.join(d, "model.onnx"), input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, opset_version=14)
    print("torch %s: %s written" % (torch.__version__, d))


main()
