"""The CNN of examples/cnn_fashion.c in eager PyTorch: the training step's time on random 28x28
images, batch 64 (Adam, lr 1e-3). Usage: cnn_torch.py [--threads T] [--steps N] [--json]"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=50)
ap.add_argument("--json", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
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
