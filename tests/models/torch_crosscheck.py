"""Independent cross-check: a ViT written here with torch.nn.functional, on random configurations
that the golden files do not cover, writes a model directory, a peft-style adapter and reference
tensors; `deit_lora check` must reproduce them. Usage: torch_crosscheck.py OUT_DIR SEED.
Needs python3-torch (Debian); the meson test skips without it."""
import json, math, os, struct, sys

import torch
import torch.nn.functional as F


def save_st(tensors, path):
    dt = {torch.float32: "F32", torch.int64: "I64"}
    hdr, blobs, off = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].contiguous().numpy().tobytes()
        hdr[k] = {"dtype": dt[tensors[k].dtype], "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main(out, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.2: (torch.randn(*s, generator=g) * scale).requires_grad_()
    D, NH, L = [(64, 4, 3), (40, 5, 2), (36, 2, 1)][seed % 3]
    FF, P, IMG, C, NL, eps = D * 2 + 4, 6, 24, 3, 7, 1e-6
    N = (IMG // P) ** 2
    cfg = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": D,
           "num_hidden_layers": L, "num_attention_heads": NH, "intermediate_size": FF, "hidden_act": "gelu",
           "layer_norm_eps": eps, "image_size": IMG, "patch_size": P, "num_channels": C, "qkv_bias": True,
           "id2label": {str(i): f"class_{i}" for i in range(NL)}, "label2id": {f"class_{i}": i for i in range(NL)}}
    W = {"vit.embeddings.cls_token": r(1, 1, D), "vit.embeddings.position_embeddings": r(1, N + 1, D),
         "vit.embeddings.patch_embeddings.projection.weight": r(D, C, P, P),
         "vit.embeddings.patch_embeddings.projection.bias": r(D),
         "vit.layernorm.weight": (1 + torch.randn(D, generator=g) * 0.1).requires_grad_(), "vit.layernorm.bias": r(D),
         "classifier.weight": r(NL, D), "classifier.bias": r(NL)}
    mods = {"attention.attention.query": (D, D), "attention.attention.key": (D, D), "attention.attention.value": (D, D),
            "attention.output.dense": (D, D), "intermediate.dense": (FF, D), "output.dense": (D, FF)}
    for i in range(L):
        p = f"vit.encoder.layer.{i}."
        for m, (o, n) in mods.items():
            W[p + m + ".weight"], W[p + m + ".bias"] = r(o, n), r(o)
        for ln in ("layernorm_before", "layernorm_after"):
            W[p + ln + ".weight"] = (1 + torch.randn(D, generator=g) * 0.1).requires_grad_()
            W[p + ln + ".bias"] = r(D)
    # LoRA on key and the MLP output (not the golden query/value), r 3, alpha 5
    R, ALPHA = 3, 5.0
    lora = {}
    for i in range(L):
        for m, (o, n) in [("attention.attention.key", (D, D)), ("output.dense", (D, FF))]:
            lora[(i, m)] = (r(R, n), r(o, R))

    def lin(x, name, i=None, m=None, use_lora=False):
        y = F.linear(x, W[name + ".weight"], W[name + ".bias"])
        if use_lora and (i, m) in lora:
            A, B = lora[(i, m)]
            y = y + (ALPHA / R) * F.linear(F.linear(x, A), B)
        return y

    def forward(x, use_lora, hs, att):
        B = x.shape[0]
        p = F.conv2d(x, W["vit.embeddings.patch_embeddings.projection.weight"],
                     W["vit.embeddings.patch_embeddings.projection.bias"], stride=P).flatten(2).transpose(1, 2)
        h = torch.cat([W["vit.embeddings.cls_token"].expand(B, -1, -1), p], 1) + W["vit.embeddings.position_embeddings"]
        hs.append(h)
        for i in range(L):
            pre = f"vit.encoder.layer.{i}."
            y = F.layer_norm(h, (D,), W[pre + "layernorm_before.weight"], W[pre + "layernorm_before.bias"], eps)
            q, k, v = (lin(y, pre + m, i, m, use_lora).view(B, -1, NH, D // NH).transpose(1, 2)
                       for m in ("attention.attention.query", "attention.attention.key", "attention.attention.value"))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // NH), -1)
            att.append(a)
            h = h + lin((a @ v).transpose(1, 2).reshape(B, -1, D), pre + "attention.output.dense")
            y = F.layer_norm(h, (D,), W[pre + "layernorm_after.weight"], W[pre + "layernorm_after.bias"], eps)
            h = h + lin(F.gelu(lin(y, pre + "intermediate.dense")), pre + "output.dense", i, "output.dense", use_lora)
            hs.append(h)
        h = F.layer_norm(h, (D,), W["vit.layernorm.weight"], W["vit.layernorm.bias"], eps)
        return F.linear(h[:, 0], W["classifier.weight"], W["classifier.bias"])

    x = torch.randn(3, C, IMG, IMG, generator=g).requires_grad_()
    labels = torch.tensor([1, 6, 3])
    os.makedirs(out, exist_ok=True)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    save_st({k: v.detach() for k, v in W.items()}, os.path.join(out, "model.safetensors"))
    ref = {"pixel_values": x.detach(), "labels": labels}
    for tag, use_lora in (("", False), ("lora.", True)):
        hs, att = [], []
        logits = forward(x, use_lora, hs, att)
        loss = F.cross_entropy(logits, labels)
        params = [a for ab in lora.values() for a in ab] + [W["classifier.weight"], W["classifier.bias"]] if use_lora else list(W.values())
        grads = torch.autograd.grad(loss, params + [x])
        ref[tag + "logits"], ref[tag + "loss"] = logits.detach(), loss.detach()
        ref[tag + "pixel_values.grad"] = grads[-1]
        if use_lora:
            names = [f"base_model.model.vit.layers.{i}.{ {'attention.attention.key': 'attention.k_proj', 'output.dense': 'mlp.fc2'}[m] }.lora_{ab}.default.weight"
                     for (i, m) in lora for ab in "AB"]
            names += ["base_model.model.classifier.modules_to_save.default.weight",
                      "base_model.model.classifier.modules_to_save.default.bias"]
        else:
            names = list(W.keys())
            for i, h in enumerate(hs):
                ref[f"hidden_states.{i}"] = h.detach()
            for i, a in enumerate(att):
                ref[f"attentions.{i}"] = a.detach()
        for n, gr in zip(names, grads[:-1]):
            ref[tag + "grad." + n] = gr
    save_st(ref, os.path.join(out, "io.safetensors"))
    ad = os.path.join(out, "adapter")
    os.makedirs(ad, exist_ok=True)
    json.dump({"peft_type": "LORA", "r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0, "bias": "none",
               "target_modules": ["k_proj", "fc2"], "modules_to_save": ["classifier"]},
              open(os.path.join(ad, "adapter_config.json"), "w"))
    at = {}
    for (i, m), (A, B) in lora.items():
        n5 = {"attention.attention.key": "attention.k_proj", "output.dense": "mlp.fc2"}[m]
        at[f"base_model.model.vit.layers.{i}.{n5}.lora_A.weight"] = A.detach()
        at[f"base_model.model.vit.layers.{i}.{n5}.lora_B.weight"] = B.detach()
    at["base_model.model.classifier.weight"] = W["classifier.weight"].detach()
    at["base_model.model.classifier.bias"] = W["classifier.bias"].detach()
    save_st(at, os.path.join(ad, "adapter_model.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
