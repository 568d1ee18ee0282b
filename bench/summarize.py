"""Best of each side's rounds from `bench/compare.sh` (lines "cgrad JSON" / "torch JSON" on stdin)."""
import json, sys

best = {}
for line in sys.stdin:
    who, js = line.split(" ", 1)
    r = json.loads(js)
    b = best.setdefault(who, dict(r))
    b["train_step_ms"] = min(b["train_step_ms"], r["train_step_ms"])
    b["infer_img_per_s"] = max(b["infer_img_per_s"], r["infer_img_per_s"])
    b["peak_rss_mb"] = min(b["peak_rss_mb"], r["peak_rss_mb"])
    if who == "cgrad":
        b["train_gflops_per_s"] = max(b["train_gflops_per_s"], r["train_gflops_per_s"])
        b["sgemm_gflops_per_s"] = max(b["sgemm_gflops_per_s"], r["sgemm_gflops_per_s"])
o, p = best["cgrad"], best["torch"]
print(f"batch {o['batch']}, {o['threads']} threads, best of the rounds for each side (PyTorch {p['torch']})")
print(f"  training step    cgrad {o['train_step_ms']:8.1f} ms   PyTorch {p['train_step_ms']:8.1f} ms   speed-up {p['train_step_ms'] / o['train_step_ms']:.2f}x")
print(f"  inference        cgrad {o['infer_img_per_s']:8.1f} img/s PyTorch {p['infer_img_per_s']:8.1f} img/s speed-up {o['infer_img_per_s'] / p['infer_img_per_s']:.2f}x")
print(f"  peak memory      cgrad {o['peak_rss_mb']:8.0f} MiB  PyTorch {p['peak_rss_mb']:8.0f} MiB  ratio {o['peak_rss_mb'] / p['peak_rss_mb']:.2f}")
print(f"  training FLOP rate {o['train_gflops_per_s']:.0f} GFLOP/s = {o['train_gflops_per_s'] / o['sgemm_gflops_per_s']:.2f} of sgemm's {o['sgemm_gflops_per_s']:.0f} GFLOP/s")
print("json:", json.dumps({"cgrad": o, "pytorch": p}))
