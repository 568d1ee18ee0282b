"""The notebook's training step in eager PyTorch, for side-by-side timing with `deit_lora bench`:
a DeiT-Tiny-shaped ViT (frozen), LoRA r=4 alpha=8 dropout 0.2 on query and value, a trainable
1001-class head; forward, cross-entropy, backward, clipping, AdamW; and inference under no_grad.
Needs Debian's python3-torch. Usage: torch_bench.py --batch 8 --threads 2 [--steps 10] [--json]"""
import argparse, json, math, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    def __init__(self, base, r=4, alpha=8, dropout=0.2):
        super().__init__()
        self.base, self.scale, self.drop = base, alpha / r, nn.Dropout(dropout)
        self.A = nn.Parameter(torch.empty(r, base.in_features).uniform_(-1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(self.drop(x), self.A), self.B)


class Block(nn.Module):
    def __init__(self, D=192, H=3, Fd=768):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D, eps=1e-12), nn.LayerNorm(D, eps=1e-12)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.fc1, self.fc2, self.H = nn.Linear(D, Fd), nn.Linear(Fd, D), H

    def forward(self, h):
        B, T, D = h.shape
        y = self.ln1(h)
        q, k, v = (m(y).view(B, T, self.H, D // self.H).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // self.H), -1)
        h = h + self.o((a @ v).transpose(1, 2).reshape(B, T, D))
        return h + self.fc2(F.gelu(self.fc1(self.ln2(h))))


class ViT(nn.Module):
    def __init__(self, D=192, L=12, classes=1001):
        super().__init__()
        self.patch = nn.Conv2d(3, D, 16, 16)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(torch.zeros(1, 197, D))
        self.blocks = nn.ModuleList(Block(D) for _ in range(L))
        self.ln = nn.LayerNorm(D, eps=1e-12)
        self.head = nn.Linear(D, classes)

    def forward(self, x):
        p = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(x.shape[0], -1, -1), p], 1) + self.pos
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h)[:, 0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = ViT()
    for p in m.parameters():
        p.requires_grad = False
    for b in m.blocks:
        b.q, b.v = LoRALinear(b.q), LoRALinear(b.v)
    for p in m.head.parameters():
        p.requires_grad = True
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=6e-4, weight_decay=0.01)
    x, y = torch.randn(a.batch, 3, 224, 224), torch.randint(0, 1001, (a.batch,))
    m.train()
    t = 0.0
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if i >= a.warmup:
            t += time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m.eval()
    ti = 0.0
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            m(x)
            if i >= a.warmup:
                ti += time.perf_counter() - t0
    r = {"batch": a.batch, "threads": a.threads, "train_step_ms": 1e3 * t / a.steps, "train_img_per_s": a.batch * a.steps / t,
         "infer_img_per_s": a.batch * a.steps / ti, "peak_rss_mb": rss, "torch": torch.__version__}
    print(json.dumps(r) if a.json else r)


main()
