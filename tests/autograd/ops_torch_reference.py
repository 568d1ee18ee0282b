"""PyTorch's values for cgrad's ops (tests/autograd/test_ops_torch.c compares): for each op, its
float64 inputs, its output and the gradients of sum(output * R) for a fixed random R.
Usage: ops_torch_reference.py OUT.safetensors (needs python3-torch)."""
import json, struct, sys

import torch
import torch.nn.functional as F

g = torch.Generator().manual_seed(7)


def rnd(*shape, lo=-1.0, hi=1.0, grad=True):
    t = torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo
    return t.requires_grad_(grad)


def away(t, pts, gap=0.01):  # no element near a kink
    with torch.no_grad():
        for p in pts:
            near = (t - p).abs() < gap
            t[near] = torch.where(t[near] < p, torch.tensor(p - 2 * gap, dtype=t.dtype), torch.tensor(p + 2 * gap, dtype=t.dtype))
    return t


def attn(q, k, v, nh, mask, causal):  # per head softmax(q k^T / sqrt(hs) + mask) v, written out (1.13 has no SDPA)
    B, Tq, C = q.shape; Tk = k.shape[1]; hs = C // nh
    qh, kh, vh = (t.view(B, -1, nh, hs).transpose(1, 2) for t in (q, k, v))
    s = qh @ kh.transpose(-1, -2) / hs ** 0.5
    if mask is not None:
        s = s + mask
    if causal:
        s = s.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool).triu(Tk - Tq + 1), float("-inf"))
    return (torch.softmax(s, -1) @ vh).transpose(1, 2).reshape(B, Tq, C)


cases = {
    "sigmoid": (lambda x: torch.sigmoid(x), [rnd(3, 5, lo=-30, hi=30)]),
    "silu": (lambda x: F.silu(x), [rnd(3, 5, lo=-8, hi=8)]),
    "softplus": (lambda x: F.softplus(x, beta=1.5, threshold=4.0), [away(rnd(4, 5, lo=-4, hi=6), [4.0 / 1.5])]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.07), [away(rnd(4, 5, lo=-2, hi=2), [0.0])]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [rnd(3, 5, lo=-5, hi=5)]),
    "pow_scalar": (lambda x: torch.pow(x, 2.5), [rnd(3, 4, lo=0.2, hi=3)]),
    "abs": (lambda x: torch.abs(x), [away(rnd(4, 5, lo=-2, hi=2), [0.0])]),
    "clamp": (lambda x: torch.clamp(x, -0.5, 0.25), [away(rnd(4, 6), [-0.5, 0.25])]),
    "minimum": (lambda x, y: torch.minimum(x, y), [rnd(3, 4), rnd(4)]),
    "maximum": (lambda x, y: torch.maximum(x, y), [rnd(2, 1, 3), rnd(4, 1)]),
    "where": (lambda x, y, z: torch.where(z > 0, x, y), [rnd(3, 4), rnd(4), away(rnd(3, 1, grad=False), [0.0])]),
    "masked_fill": (lambda x: x.masked_fill(x < 0, -3.0), [away(rnd(3, 4), [0.0])]),
    "logsumexp": (lambda x: torch.logsumexp(x, 1), [rnd(2, 5, 3, lo=-3, hi=3)]),
    "var": (lambda x: torch.var(x, 1, correction=1), [rnd(2, 5, 3, lo=-2, hi=2)]),
    "std": (lambda x: torch.std(x, 0, correction=0, keepdim=True), [rnd(4, 3, lo=-2, hi=2)]),
    "mse_loss": (lambda x, y: F.mse_loss(x, y), [rnd(3, 4), rnd(3, 4)]),
    "bce_with_logits": (lambda x, y: F.binary_cross_entropy_with_logits(x, y), [rnd(3, 4, lo=-40, hi=40), rnd(3, 4, lo=0, hi=1)]),
    "nll_loss": (lambda x: F.nll_loss(F.log_softmax(x, 1), torch.tensor([2, 0, 4])), [rnd(3, 5, lo=-2, hi=2)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)), [rnd(2, 3, 5, 6), rnd(4, 3, 3, 2), rnd(4)]),
    "conv2d_groups": (lambda x, w: F.conv2d(x, w, None, padding=1, groups=2), [rnd(2, 4, 4, 4), rnd(6, 2, 3, 3)]),
    "conv2d_same_dilated": (lambda x, w, b: F.conv2d(x, w, b, padding=2, dilation=2), [rnd(2, 2, 6, 5), rnd(3, 2, 3, 3), rnd(3)]),
    "conv2d_wide_padding": (lambda x, w: F.conv2d(x, w, None, padding=(4, 2)), [rnd(2, 2, 3, 4), rnd(2, 2, 5, 5)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, (3, 2), (2, 1), (1, 1)), [rnd(2, 2, 5, 4)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1), [rnd(2, 2, 5, 6)]),
    "global_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, 1), [rnd(2, 3, 4, 5)]),
    "softmax_dim": (lambda x: torch.softmax(x, 1), [rnd(2, 4, 3, lo=-2, hi=2)]),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b, 1e-5), [rnd(2, 4, 3, 2, lo=-2, hi=2), rnd(4, lo=0.5, hi=1.5), rnd(4)]),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, 1e-5), [rnd(4, 3, 2, 2, lo=-2, hi=2), rnd(3, lo=0.5, hi=1.5), rnd(3)]),
    "batch_norm_running": (lambda x: (lambda rm, rv: (F.batch_norm(x, rm, rv, None, None, True, 0.1, 1e-5), torch.cat([rm, rv]))[1])(
        torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64)), [rnd(4, 3, 2, 2, grad=False)]),
    "batch_norm_eval": (lambda x, w, b: F.batch_norm(x, torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64),
                        torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64), w, b, False, 0.1, 1e-5), [rnd(2, 3, 4, lo=-2, hi=2), rnd(3, lo=0.5, hi=1.5), rnd(3)]),
    "group_norm_plain": (lambda x: F.group_norm(x, 3, None, None, 1e-5), [rnd(3, 6, 2, lo=-2, hi=2)]),
    "batch_norm_bias_only": (lambda x, b: F.batch_norm(x, None, None, None, b, True, 0.1, 1e-5), [rnd(3, 2, 5, lo=-2, hi=2), rnd(2)]),
    "layer_norm_2d": (lambda x, w, b: F.layer_norm(x, (3, 4), w, b, 1e-5), [rnd(2, 3, 4, lo=-2, hi=2), rnd(3, 4, lo=0.5, hi=1.5), rnd(3, 4)]),
    "layer_norm_plain": (lambda x: F.layer_norm(x, (2, 2, 3), None, None, 1e-5), [rnd(2, 2, 3, lo=-2, hi=2)]),
    "ce_none": (lambda x: F.cross_entropy(x, torch.tensor([[2, -1, 0], [1, 3, 3]]), ignore_index=-1, reduction="none", label_smoothing=0.1),
                [rnd(2, 4, 3, lo=-2, hi=2)]),
    "ce_sum": (lambda x: F.cross_entropy(x, torch.tensor([2, 0, 4]), reduction="sum", label_smoothing=0.2), [rnd(3, 5, lo=-2, hi=2)]),
    "ce_all_ignored": (lambda x: F.cross_entropy(x, torch.tensor([-100, -100]), reduction="sum"), [rnd(2, 5)]),
    "nll_none": (lambda x: F.nll_loss(torch.log_softmax(x, 1), torch.tensor([2, 7, 1]), ignore_index=7, reduction="none"), [rnd(3, 4, lo=-2, hi=2)]),
    "mse_sum": (lambda x, y: F.mse_loss(x, y.expand(2, 3), reduction="sum"), [rnd(2, 3, lo=-2, hi=2), rnd(3, lo=-2, hi=2)]),
    "bce_none": (lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none"), [rnd(2, 3, lo=-3, hi=3), rnd(2, 3, lo=0, hi=1)]),
    "l1_mean": (lambda x, y: F.l1_loss(x, y), [rnd(2, 3, lo=0.5, hi=1.5), rnd(2, 3, lo=-1, hi=0)]),
    "rms_norm": (lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w, [rnd(3, 5, lo=-2, hi=2), rnd(5, lo=0.5, hi=1.5)]),
    "embedding": (lambda w: F.embedding(torch.tensor([[4, 0, 2], [2, 1, 4]]), w), [rnd(5, 3)]),
    "flip": (lambda x: torch.flip(x, [1]), [rnd(2, 4)]),
    "pad": (lambda x: F.pad(x, (0, 0, 1, 2), value=0.5), [rnd(2, 3)]),
    "stack": (lambda x, y: torch.stack([x, y, x], 1), [rnd(2, 3), rnd(2, 3)]),
    "cross_entropy_nd": (lambda x: F.cross_entropy(x, torch.tensor([[2, -100, 0], [1, 3, -100]]), ignore_index=-100), [rnd(2, 4, 3, lo=-2, hi=2)]),
    "attention_masked": (lambda q, k, v: attn(q, k, v, 2, torch.tensor([[0, -1.5, 0.5, float("-inf")], [0, 2, 0.25, -0.5],
                                                                         [0, 1, float("-inf"), 0]], dtype=torch.float64), False),
                         [rnd(2, 3, 4), rnd(2, 4, 4), rnd(2, 4, 4)]),
    "attention_causal": (lambda q, k, v: attn(q, k, v, 2, None, True), [rnd(2, 3, 4), rnd(2, 4, 4), rnd(2, 4, 4)]),
    # nn.MultiheadAttention (batch_first) with PyTorch's own forward, a causal mask as attn_mask
    "mha_causal": (lambda x, w, b, ow, ob: F.multi_head_attention_forward(
        x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), 4, 2, w, b, None, None, False, 0.0, ow, ob, training=False,
        need_weights=False, attn_mask=torch.ones(3, 3, dtype=torch.bool).triu(1))[0].transpose(0, 1),
        [rnd(2, 3, 4), rnd(12, 4), rnd(12), rnd(4, 4), rnd(4)]),
    "matmul_broadcast": (lambda x, y: torch.matmul(x, y), [rnd(2, 1, 3, 4), rnd(3, 4, 5)]),
    "sum_dims": (lambda x: x.sum((0, 2)), [rnd(2, 3, 4)]),
    "mean_dims": (lambda x: x.mean((-1, 1), keepdim=True), [rnd(2, 3, 4)]),
    "layernorm_dim": (lambda x, w, b: F.layer_norm(x.transpose(1, 2), (4,), w, b, 1e-5).transpose(1, 2), [rnd(2, 4, 3, lo=-2, hi=2), rnd(4, lo=0.5, hi=1.5), rnd(4)]),
    "eq": (lambda x, y: (x == y).double(), [torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64), torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)]),
    "lt": (lambda x, y: (x < y).double(), [rnd(3, 4, grad=False), rnd(4, grad=False)]),
    "ge": (lambda x, y: (x >= y).double(), [rnd(3, 4, grad=False), rnd(3, 1, grad=False)]),
    "ne": (lambda x, y: (x != y).double(), [torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64), torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)]),
    "le": (lambda x, y: (x <= y).double(), [torch.tensor([[1.0, 2.0, 3.0], [0.5, 2.5, -1.0]], dtype=torch.float64), torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)]),
}

out = {}
# optimizers: five steps from one start with fixed float32 gradients; the parameters after each
optims = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
}
for name, make in optims.items():
    p0 = (torch.rand(3, 4, generator=g) * 2 - 1).float()
    grads = [(torch.rand(3, 4, generator=g) * 2 - 1).float() for _ in range(5)]
    p = p0.clone().requires_grad_(True)
    opt, traj = make([p]), []
    for gk in grads:
        p.grad = gk.clone()
        opt.step()
        traj.append(p.detach().clone())
    out[f"optim_{name}.p0"] = p0.double()
    out[f"optim_{name}.grads"] = torch.stack(grads).double()
    out[f"optim_{name}.traj"] = torch.stack(traj).double()
for name, (fn, ins) in cases.items():
    y = fn(*ins)
    R = torch.rand(y.shape, generator=g, dtype=torch.float64)
    if any(t.requires_grad for t in ins):
        (y * R).sum().backward()
    out[f"{name}.out"] = y.detach()
    out[f"{name}.R"] = R
    for i, t in enumerate(ins):
        out[f"{name}.in{i}"] = t.detach()
        if t.grad is not None:
            out[f"{name}.grad{i}"] = t.grad

hdr, blobs, off = {}, [], 0
for k in sorted(out):
    b = out[k].contiguous().numpy().tobytes()
    hdr[k] = {"dtype": "F64", "shape": list(out[k].shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print(f"{len(cases)} ops written")
