"""Throughput and latency of `deit_lora serve` under load, against `deit_lora bench`'s inference
rate on the same model and machine: C clients (16) each send one image after another (real JPEG
photos: decoding and preprocessing count), for R requests in all; then the same model's inference
rate from `deit_lora bench --batch B` (the server's largest batch). Rounds alternate.
Usage: serve_bench.py DEIT_LORA MODEL_DIR IMAGE_DIR [--clients 16] [--requests 480] [--rounds 3]
                      [--max-batch 16] [--threads 2]
Prints one line per round and a summary; --json for the summary alone."""
import argparse, concurrent.futures, glob, http.client, json, os, platform, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("model")
ap.add_argument("images")
ap.add_argument("--clients", type=int, default=16)
ap.add_argument("--requests", type=int, default=480)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--max-batch", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--json", action="store_true")
a = ap.parse_args()
files = sorted(glob.glob(os.path.join(a.images, "*.jpg")) + glob.glob(os.path.join(a.images, "*.png")))
data = [open(f, "rb").read() for f in files]


def serve_round():
    p = subprocess.Popen([a.bin, "serve", "--model", a.model, "--port", "0", "--threads", str(a.threads),
                          "--max-batch", str(a.max_batch)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(p.stdout.readline().split("127.0.0.1:")[1].split()[0])

    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # keep-alive, as a real client would
        lat = []
        for i in range(k, a.requests, a.clients):
            t0 = time.perf_counter()
            c.request("POST", "/predict", data[i % len(data)], {"Content-Type": "image/jpeg"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit("status %d" % r.status)
            lat.append(time.perf_counter() - t0)
        c.close()
        return lat

    with concurrent.futures.ThreadPoolExecutor(a.clients) as ex:  # warm-up
        list(ex.map(client, range(a.clients)))
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(a.clients) as ex:
        lats = sorted(x for l in ex.map(client, range(a.clients)) for x in l)
    dt = time.perf_counter() - t0
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/metrics")
    m = c.getresponse().read().decode()
    p.terminate()
    p.wait()
    n = lambda k: float([l for l in m.splitlines() if l.startswith(k + " ")][0].split()[1])
    return {"img_per_s": len(lats) / dt, "p50_ms": 1000 * lats[len(lats) // 2], "p99_ms": 1000 * lats[int(len(lats) * 0.99)],
            "mean_batch": n("deit_lora_batch_size_sum") / n("deit_lora_batch_size_count")}


def bench_round():
    out = subprocess.run([a.bin, "bench", "--model", a.model, "--batch", str(a.max_batch), "--threads", str(a.threads), "--json",
                          "--steps", "4"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


rounds = []
for r in range(a.rounds):
    s, b = serve_round(), bench_round()
    rounds.append((s, b))
    if not a.json:
        print("round %d: serve %.1f img/s (p50 %.0f ms, p99 %.0f ms, mean batch %.1f); bench inference %.1f img/s; ratio %.2f"
              % (r + 1, s["img_per_s"], s["p50_ms"], s["p99_ms"], s["mean_batch"], b["infer_img_per_s"], s["img_per_s"] / b["infer_img_per_s"]))
best_s = max(rounds, key=lambda x: x[0]["img_per_s"])[0]
best_b = max(x[1]["infer_img_per_s"] for x in rounds)
summary = {"clients": a.clients, "requests": a.requests, "max_batch": a.max_batch, "threads": a.threads,
           "serve_img_per_s": round(best_s["img_per_s"], 1), "p50_ms": round(best_s["p50_ms"], 1), "p99_ms": round(best_s["p99_ms"], 1),
           "mean_batch": round(best_s["mean_batch"], 2), "bench_infer_img_per_s": best_b,
           "ratio": round(best_s["img_per_s"] / best_b, 3), "cpu": rounds[0][1].get("cpu"), "cpu_features": rounds[0][1].get("cpu_features")}
print(json.dumps(summary))
