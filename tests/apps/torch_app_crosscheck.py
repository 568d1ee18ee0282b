"""Independent reference for the deit_lora commands on a model and adapter generated here at random
(shapes and targets the golden files do not have): predict (top-5 probabilities within 1e-4),
eval (the notebook's metrics), merge (logits of the merged model equal the adapter's), and train
(a short run with --init-adapter, no shuffling, dropout 0, against torch.optim.AdamW with HF's loss
scaling, clipping and linear schedule: every trained tensor within 1e-5 relative).
Usage: torch_app_crosscheck.py DEIT_LORA WORKDIR. Needs python3-torch, python3-numpy, python3-pil."""
import json, math, os, struct, subprocess, sys
import numpy as np
import torch

import st_io
import torch.nn.functional as F
from PIL import Image

BIN, WORK = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(11)
D, NH, L, FF, P, IMG, NL, EPS = 40, 4, 2, 72, 8, 32, 5, 1e-6
R, ALPHA = 2, 6.0
N = (IMG // P) ** 2


def save_st(t, path):
    hdr, blobs, off = {}, [], 0
    for k in sorted(t):
        b = t[k].detach().contiguous().numpy().astype(np.float32).tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(t[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rnd(*s, scale=0.3):
    return torch.randn(*s, generator=g) * scale


# ---- a model and an adapter (LoRA on value and attention output: v_proj, o_proj) ----
labels = [f"thing_{i}" for i in range(NL)]
W = {"vit.embeddings.cls_token": rnd(1, 1, D), "vit.embeddings.position_embeddings": rnd(1, N + 1, D),
     "vit.embeddings.patch_embeddings.projection.weight": rnd(D, 3, P, P, scale=0.05),
     "vit.embeddings.patch_embeddings.projection.bias": rnd(D), "vit.layernorm.weight": 1 + rnd(D, scale=0.1),
     "vit.layernorm.bias": rnd(D), "classifier.weight": rnd(NL, D), "classifier.bias": rnd(NL)}
MODS = {"attention.attention.query": (D, D), "attention.attention.key": (D, D), "attention.attention.value": (D, D),
        "attention.output.dense": (D, D), "intermediate.dense": (FF, D), "output.dense": (D, FF)}
for i in range(L):
    p = f"vit.encoder.layer.{i}."
    for m, (o, n) in MODS.items():
        W[p + m + ".weight"], W[p + m + ".bias"] = rnd(o, n, scale=1 / math.sqrt(n)), rnd(o, scale=0.1)
    for ln in ("layernorm_before", "layernorm_after"):
        W[p + ln + ".weight"], W[p + ln + ".bias"] = 1 + rnd(D, scale=0.1), rnd(D, scale=0.1)
TARGETS = {"attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj"}
lora = {(i, m): [rnd(R, D, scale=0.2), rnd(D, R, scale=0.2)] for i in range(L) for m in TARGETS}
head = [W["classifier.weight"] + rnd(NL, D, scale=0.05), W["classifier.bias"].clone()]

model_dir, adapter_dir = os.path.join(WORK, "model"), os.path.join(WORK, "adapter")
os.makedirs(model_dir, exist_ok=True), os.makedirs(adapter_dir, exist_ok=True)
json.dump({"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": D, "num_hidden_layers": L,
           "num_attention_heads": NH, "intermediate_size": FF, "hidden_act": "gelu", "layer_norm_eps": EPS,
           "image_size": IMG, "patch_size": P, "num_channels": 3, "qkv_bias": True,
           "id2label": {str(i): l for i, l in enumerate(labels)}, "label2id": {l: i for i, l in enumerate(labels)}},
          open(os.path.join(model_dir, "config.json"), "w"))
save_st(W, os.path.join(model_dir, "model.safetensors"))
json.dump({"peft_type": "LORA", "r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0, "bias": "none",
           "target_modules": ["v_proj", "o_proj"], "modules_to_save": ["classifier"]}, open(os.path.join(adapter_dir, "adapter_config.json"), "w"))
at = {}
for (i, m), (A, B) in lora.items():
    at[f"base_model.model.vit.layers.{i}.{TARGETS[m]}.lora_A.weight"] = A
    at[f"base_model.model.vit.layers.{i}.{TARGETS[m]}.lora_B.weight"] = B
at["base_model.model.classifier.weight"], at["base_model.model.classifier.bias"] = head
save_st(at, os.path.join(adapter_dir, "adapter_model.safetensors"))


def forward(x, lora_params, head_params, weights=W):
    w = weights
    B = x.shape[0]

    def lin(h, name, i=None, m=None):
        y = F.linear(h, w[name + ".weight"], w[name + ".bias"])
        if lora_params is not None and (i, m) in lora_params:
            A, Bm = lora_params[(i, m)]
            y = y + (ALPHA / R) * F.linear(F.linear(h, A), Bm)
        return y

    p = F.conv2d(x, w["vit.embeddings.patch_embeddings.projection.weight"], w["vit.embeddings.patch_embeddings.projection.bias"], stride=P)
    h = torch.cat([w["vit.embeddings.cls_token"].expand(B, -1, -1), p.flatten(2).transpose(1, 2)], 1) + w["vit.embeddings.position_embeddings"]
    for i in range(L):
        pre = f"vit.encoder.layer.{i}."
        y = F.layer_norm(h, (D,), w[pre + "layernorm_before.weight"], w[pre + "layernorm_before.bias"], EPS)
        q, k, v = (lin(y, pre + m, i, m).view(B, -1, NH, D // NH).transpose(1, 2)
                   for m in ("attention.attention.query", "attention.attention.key", "attention.attention.value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // NH), -1)
        h = h + lin((a @ v).transpose(1, 2).reshape(B, -1, D), pre + "attention.output.dense", i, "attention.output.dense")
        y = F.layer_norm(h, (D,), w[pre + "layernorm_after.weight"], w[pre + "layernorm_after.bias"], EPS)
        h = h + lin(F.gelu(lin(y, pre + "intermediate.dense")), pre + "output.dense")
    h = F.layer_norm(h, (D,), w["vit.layernorm.weight"], w["vit.layernorm.bias"], EPS)
    return F.linear(h[:, 0], head_params[0], head_params[1])


# ---- images at the model's size (so that resizing is Pillow's identity copy) in class folders ----
rs = np.random.default_rng(5)
data = os.path.join(WORK, "data")
files, ys = [], []
for c in (1, 3):
    os.makedirs(os.path.join(data, labels[c]), exist_ok=True)
    for j in range(6):
        f = os.path.join(data, labels[c], f"img{j:02d}.png")
        Image.fromarray(rs.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8)).save(f)
        files.append(f), ys.append(c)


def pixels(paths):
    a = np.stack([np.array(Image.open(p).convert("RGB")) for p in paths]).astype(np.float64) * (1 / 255)
    return torch.from_numpy(((a.astype(np.float32) - 0.5) / 0.5).transpose(0, 3, 1, 2).copy())


X, Y = pixels(files), torch.tensor(ys)
fails, passes = [], []


def check(name, ok, detail):
    print(("ok   " if ok else "FAIL ") + name + ": " + detail)
    (passes if ok else fails).append(name)


# predict
out = subprocess.run([BIN, "predict", "--model", model_dir, "--adapter", adapter_dir, "--top", "5", "--json"] + files[:4],
                     check=True, capture_output=True, text=True).stdout.strip().splitlines()
with torch.no_grad():
    probs = torch.softmax(forward(X[:4], lora, head), -1)
worst = 0.0
for i, line in enumerate(out):
    r = json.loads(line)
    top = torch.topk(probs[i], 5)
    ids_ok = [t["id"] for t in r["top"]] == top.indices.tolist() and [t["label"] for t in r["top"]] == [labels[j] for j in top.indices.tolist()]
    worst = max(worst, max(abs(t["prob"] - float(v)) for t, v in zip(r["top"], top.values)))
    check(f"predict {os.path.basename(r['image'])} top-5 ids", ids_ok, str([t['id'] for t in r['top']]))
check("predict top-5 probabilities", worst <= 1e-4, f"max diff {worst:.2e}")

# eval (target class thing_3)
r = json.loads(subprocess.run([BIN, "eval", "--model", model_dir, "--adapter", adapter_dir, "--data", data, "--target", "thing_3", "--json"],
                              check=True, capture_output=True, text=True).stdout)
with torch.no_grad():
    p = torch.softmax(forward(X, lora, head), -1)
pred = p.argmax(-1)
tp = int(((pred == 3) & (Y == 3)).sum()); fp = int(((pred == 3) & (Y != 3)).sum()); fn = int(((pred != 3) & (Y == 3)).sum())
loss = float((-torch.log(p[torch.arange(len(Y)), Y] + 1e-8)).mean())
check("eval counts", (r["tp"], r["fp"], r["fn"], r["n"]) == (tp, fp, fn, len(Y)), f"{(r['tp'], r['fp'], r['fn'])} vs {(tp, fp, fn)}")
check("eval avg_loss", abs(r["avg_loss"] - loss) <= 1e-5, f"{r['avg_loss']:.7f} vs {loss:.7f}")
check("eval accuracy", abs(r["accuracy"] - float((pred == Y).float().mean())) < 1e-9, f"{r['accuracy']}")

# merge: a plain model directory with the adapter folded in
merged = os.path.join(WORK, "merged")
subprocess.run([BIN, "merge", "--model", model_dir, "--adapter", adapter_dir, "--output", merged], check=True, capture_output=True)
mw = st_io.load(os.path.join(merged, "model.safetensors"))
with torch.no_grad():
    d = float((forward(X, None, (mw["classifier.weight"], mw["classifier.bias"]), weights=mw) - forward(X, lora, head)).abs().max())
check("merge logits equal the adapter's", d <= 1e-5, f"max diff {d:.2e}")

# train: 12 images, batch 2, accumulation 2 (a partial window per epoch), 2 epochs, no shuffle
out_dir = os.path.join(WORK, "trained")
subprocess.run([BIN, "train", "--model", model_dir, "--data", data, "--output", out_dir, "--init-adapter", adapter_dir,
                "--epochs", "2", "--batch-size", "2", "--grad-accum", "4", "--lr", "3e-3", "--weight-decay", "0.05",
                "--test-size", "0", "--no-shuffle", "--logging-steps", "1", "--quiet"], check=True, capture_output=True)
params = {k: [v[0].clone().requires_grad_(), v[1].clone().requires_grad_()] for k, v in lora.items()}
hp = [head[0].clone().requires_grad_(), head[1].clone().requires_grad_()]
decay = [t for ab in params.values() for t in ab] + [hp[0]]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": [hp[1]], "weight_decay": 0.0}], lr=3e-3)
n, bs, acc, epochs = len(Y), 2, 4, 2
micro = math.ceil(n / bs)
steps_per_epoch = math.ceil(micro / acc)
total = epochs * steps_per_epoch
step = 0
for e in range(epochs):
    for s in range(steps_per_epoch):
        mbs = list(range(s * acc, min((s + 1) * acc, micro)))
        nw = sum(min((m + 1) * bs, n) - m * bs for m in mbs)
        for m in mbs:
            lo, hi = m * bs, min((m + 1) * bs, n)
            (F.cross_entropy(forward(X[lo:hi], params, hp), Y[lo:hi], reduction="sum") / nw).backward()
        torch.nn.utils.clip_grad_norm_(decay + [hp[1]], 1.0)
        for grp in opt.param_groups:
            grp["lr"] = 3e-3 * (total - step) / total
        opt.step()
        opt.zero_grad()
        step += 1
got = st_io.load(os.path.join(out_dir, "adapter_model.safetensors"))
worst = 0.0
for (i, m), (A, B) in params.items():
    v4 = f"base_model.model.vit.encoder.layer.{i}.{m}"
    for t, name in ((A, "lora_A"), (B, "lora_B")):
        d = ((got[f"{v4}.{name}.weight"] - t.detach()).abs() / (t.detach().abs() + 1e-2)).max()
        worst = max(worst, float(d))
for t, name in ((hp[0], "weight"), (hp[1], "bias")):
    worst = max(worst, float(((got[f"base_model.model.classifier.{name}"] - t.detach()).abs() / (t.detach().abs() + 1e-2)).max()))
check(f"train: {total} steps, every tensor within 1e-5 relative (1e-7 absolute)", worst <= 1e-5, f"worst {worst:.2e}")
print(f"app: {len(passes)} passed, {len(fails)} failed")
sys.exit(1 if fails else 0)
