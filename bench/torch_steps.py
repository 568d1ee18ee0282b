"""The PyTorch side of bench/model_compare.sh: one training step timed as the examples' benchmarks
time theirs (the batch made once; 5 untimed steps, then N timed), printed as one JSON line.
time_steps(model, opt, x, y) is used by cnn_torch.py, resnet_torch.py and gru_torch.py."""
import argparse, json, time
import torch
import torch.nn.functional as F


def args(steps=20):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return a


def time_steps(a, model, opt, x, y):
    t = 0.0
    for i in range(5 + a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 5:
            t += time.perf_counter() - t0
    r = {"step_ms": 1e3 * t / a.steps, "threads": a.threads, "torch": torch.__version__}
    print(json.dumps(r) if a.json else r)
