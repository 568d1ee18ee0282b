"""Independent reference for `deit_lora explain`: a plain PyTorch ViT (Hugging Face's
ViTForImageClassification, eager attention) built from a model directory's safetensors, first
checked against the golden attentions and logits of io.safetensors; then attention rollout (Abnar &
Zuidema 2020: A' = 0.5 mean_h A + 0.5 I, rows renormalised, multiplied from the first layer up)
and gradient-weighted relevance (Chefer, Gur & Wolf 2021: R = I, R += mean_h((dA * A)^+) R, the
gradient of the predicted class's logit) from PyTorch's autograd, compared with what the program
prints for the same pixels (deit_lora preprocess, then explain).
Usage: explain_reference.py DEIT_LORA MODEL_DIR [ADAPTER_DIR] WORKDIR IMAGE...
Prints "N passed, N failed"."""
import glob, json, os, struct, subprocess, sys
import numpy as np
import torch

import st_io

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, done  # noqa: E402

BIN, MODEL = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
ADAPTER = rest.pop(0) if rest and os.path.isdir(rest[0]) and os.path.exists(os.path.join(rest[0], "adapter_config.json")) else None
WORK, IMAGES = rest[0], rest[1:]


cfg = json.load(open(os.path.join(MODEL, "config.json")))
W = {}
for f in sorted(glob.glob(os.path.join(MODEL, "model*.safetensors"))):
    W.update(st_io.load(f))
D, NH, L, EPS = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
P = cfg["patch_size"]
if ADAPTER:  # merge the LoRA branches (W + alpha/r B A) and take the saved classifier
    acfg = json.load(open(os.path.join(ADAPTER, "adapter_config.json")))
    A = st_io.load(os.path.join(ADAPTER, "adapter_model.safetensors"))
    scale = acfg["lora_alpha"] / acfg["r"]
    v5 = {"q_proj": "attention.attention.query", "k_proj": "attention.attention.key", "v_proj": "attention.attention.value",
          "o_proj": "attention.output.dense", "fc1": "intermediate.dense", "fc2": "output.dense"}
    for k, t in A.items():
        k = k.replace("base_model.model.", "")
        if k.startswith("classifier."):
            W[k] = t
        elif ".lora_A." in k:
            mod = k.split(".lora_A.")[0]  # vit.layers.N.attention.q_proj
            parts = mod.split(".")
            n, short = parts[2], parts[-1]
            base = "vit.encoder.layer.%s.%s.weight" % (n, v5[short])
            W[base] = W[base] + scale * A["base_model.model." + mod + ".lora_B.weight"] @ t


def lin(x, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def ln(x, name):
    return torch.nn.functional.layer_norm(x, (D,), W[name + ".weight"], W[name + ".bias"], EPS)


def forward(px):
    """logits, the attention probabilities of each layer (retaining their gradients)"""
    B = px.shape[0]
    px = px.clone().to(W["classifier.weight"].dtype).requires_grad_(True)  # so that the attentions have gradients
    x = torch.nn.functional.conv2d(px, W["vit.embeddings.patch_embeddings.projection.weight"],
                                   W["vit.embeddings.patch_embeddings.projection.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([W["vit.embeddings.cls_token"].expand(B, 1, D), x], 1) + W["vit.embeddings.position_embeddings"]
    atts = []
    for i in range(L):
        pre = "vit.encoder.layer.%d." % i
        y = ln(x, pre + "layernorm_before")
        T = y.shape[1]
        heads = lambda t: t.view(B, T, NH, D // NH).transpose(1, 2)
        q, k, v = (heads(lin(y, pre + "attention.attention." + n)) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / (D // NH) ** 0.5, -1)
        a.retain_grad()
        atts.append(a)
        x = x + lin((a @ v).transpose(1, 2).reshape(B, T, D), pre + "attention.output.dense")
        y = ln(x, pre + "layernorm_after")
        x = x + lin(torch.nn.functional.gelu(lin(y, pre + "intermediate.dense")), pre + "output.dense")
    x = ln(x, "vit.layernorm")
    return lin(x[:, 0], "classifier"), atts


def rollout(atts):
    T = atts[0].shape[-1]
    r = torch.eye(T, dtype=torch.float64)
    for a in atts:
        m = 0.5 * a[0].double().mean(0) + 0.5 * torch.eye(T, dtype=torch.float64)
        m = m / m.sum(-1, keepdim=True)
        r = m @ r
    return r[0, 1:]


def relevance(atts):
    T = atts[0].shape[-1]
    r = torch.eye(T, dtype=torch.float64)
    for a in atts:
        m = (a.grad[0].double() * a[0].double()).clamp(min=0).mean(0)
        r = r + m @ r
    return r[0, 1:]


# the reference model against the golden Python stack's own attentions and logits
io_path = os.path.join(MODEL, "io.safetensors")
if os.path.exists(io_path) and not ADAPTER:
    io = st_io.load(io_path)
    logits, atts = forward(io["pixel_values"])
    check("reference logits equal the golden logits", (logits - io["logits"]).abs().max() < 1e-4,
          float((logits - io["logits"]).abs().max()))
    for i in (i for i in range(L) if "attentions.%d" % i in io):
        d = (atts[i] - io["attentions.%d" % i]).abs().max()
        check("reference attentions.%d equal the golden ones" % i, d < 1e-5, float(d))

# the same pixels for both sides
pv = os.path.join(WORK, "pixels.safetensors")
subprocess.run([BIN, "preprocess", "--model", MODEL, "--out", pv, "--overwrite"] + IMAGES, check=True, stdout=subprocess.DEVNULL)
pixels = st_io.load(pv)["pixel_values"]
worst = {}
for method, fn in (("rollout", rollout), ("relevance", relevance)):
    cmd = [BIN, "explain", "--model", MODEL, "--method", method] + (["--adapter", ADAPTER] if ADAPTER else []) + IMAGES
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    check(method + ": one line per image", len(lines) == len(IMAGES), len(lines))
    for n, (img, line) in enumerate(zip(IMAGES, lines)):
        got = json.loads(line)
        logits, atts = forward(pixels[n:n + 1])
        best = int(logits[0].argmax())
        logits[0, best].backward()
        want = fn(atts).detach().numpy()
        have = np.array(got["map"], dtype=np.float64).reshape(-1)
        err = np.abs(have - want).max()
        tol = 1e-6  # both within about 1e-7 of the reference (float32 attention and gradients)
        check("%s %s: map within %g of the reference" % (method, os.path.basename(img), tol), err < tol,
              "max error %g (map values up to %g)" % (err, np.abs(want).max()))
        worst[method] = max(worst.get(method, 0), err)
        check("%s %s: predicted class" % (method, os.path.basename(img)), got["id"] == best, (got["id"], best))
        prob = float(torch.softmax(logits[0].double(), -1)[best])
        check("%s %s: probability" % (method, os.path.basename(img)), abs(got["prob"] - prob) < 1e-5, (got["prob"], prob))
print("largest map errors: " + ", ".join("%s %.2g" % kv for kv in worst.items()))
done()
