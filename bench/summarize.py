"""Best of each side's rounds from `bench/compare.sh` (lines "cgrad JSON" / "torch JSON" on stdin),
per PyTorch version, and cgrad's ratios against the faster PyTorch on each measure."""
import json, sys

best = {}
for line in sys.stdin:
    who, js = line.split(" ", 1)
    r = json.loads(js)
    key = who if who == "cgrad" else "torch " + r["torch"]
    b = best.setdefault(key, dict(r))
    b["train_step_ms"] = min(b["train_step_ms"], r["train_step_ms"])
    b["infer_img_per_s"] = max(b["infer_img_per_s"], r["infer_img_per_s"])
    b["peak_rss_mb"] = min(b["peak_rss_mb"], r["peak_rss_mb"])
    if who == "cgrad":
        b["train_gflops_per_s"] = max(b["train_gflops_per_s"], r["train_gflops_per_s"])
        b["sgemm_gflops_per_s"] = max(b["sgemm_gflops_per_s"], r["sgemm_gflops_per_s"])
o = best.pop("cgrad")
torches = sorted(best.values(), key=lambda p: p["torch"])
print(f"batch {o['batch']}, {o['threads']} threads, best of the rounds for each side; CPU {o.get('cpu', '?')} "
      f"({o.get('cpu_features', '?')}), cgrad's GEMM kernel {o.get('gemm_kernel', '?')}")
for p in torches:
    print(f"  PyTorch {p['torch']:<12} training step {p['train_step_ms']:8.1f} ms   inference {p['infer_img_per_s']:6.1f} img/s   "
          f"peak memory {p['peak_rss_mb']:5.0f} MiB")
print(f"  cgrad                training step {o['train_step_ms']:8.1f} ms   inference {o['infer_img_per_s']:6.1f} img/s   "
      f"peak memory {o['peak_rss_mb']:5.0f} MiB")
ft = min(torches, key=lambda p: p["train_step_ms"])
fi = max(torches, key=lambda p: p["infer_img_per_s"])
fm = min(torches, key=lambda p: p["peak_rss_mb"])
print(f"  against the faster PyTorch: training {ft['train_step_ms'] / o['train_step_ms']:.2f}x (vs {ft['torch']}), "
      f"inference {o['infer_img_per_s'] / fi['infer_img_per_s']:.2f}x (vs {fi['torch']}), "
      f"peak memory {o['peak_rss_mb'] / fm['peak_rss_mb']:.2f} (vs {fm['torch']})")
print(f"  training FLOP rate {o['train_gflops_per_s']:.0f} GFLOP/s = {o['train_gflops_per_s'] / o['sgemm_gflops_per_s']:.2f} "
      f"of sgemm's {o['sgemm_gflops_per_s']:.0f} GFLOP/s")
print("json:", json.dumps({"cgrad": o, "pytorch": torches}))
