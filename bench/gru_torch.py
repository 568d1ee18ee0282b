"""The GRU of examples/gru_rows.c in eager PyTorch (nn.GRU, fused): the training step's time on random
28x28 images read as 28 rows, batch 128 (Adam, lr 2e-3). Usage: gru_torch.py [--threads T] [--steps N] [--json]"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class RowGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(h[0])


ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--json", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = RowGru()
opt = torch.optim.Adam(m.parameters(), lr=2e-3)
x, y = torch.randn(128, 28, 28), torch.zeros(128, dtype=torch.long)
t = 0.0
for i in range(5 + a.steps):
    t0 = time.perf_counter()
    loss = F.cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i >= 5:
        t += time.perf_counter() - t0
r = {"step_ms": 1e3 * t / a.steps, "threads": a.threads, "torch": torch.__version__}
print(json.dumps(r) if a.json else r)
