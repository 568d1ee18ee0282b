"""deit_lora serve on 127.0.0.1 (a free port): /predict answers exactly what predict --json prints,
for every golden image, raw or as a multipart file; bad requests get 400/404/405/413 with a JSON
error; a full queue answers 503; 1,000 requests, 16 at a time, good and bad mixed, every answer
right, the server alive with its memory flat; a stalled client is cut off while others are served;
SIGTERM finishes the request in flight and exits 0; /metrics counts what happened.
Usage: serve_test.py DEIT_LORA DATA_DIR. Standard library only. Prints "N passed, N failed"."""
import concurrent.futures, glob, http.client, json, os, signal, socket, subprocess, sys, threading, time, urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, done  # noqa: E402
import serve_util  # noqa: E402

BIN, DATA = sys.argv[1], sys.argv[2]
MODEL, ADAPTER = os.path.join(DATA, "golden", "tiny"), os.path.join(DATA, "golden", "tiny_lora")
IMAGES = sorted(glob.glob(os.path.join(DATA, "golden", "images", "*.jpg")) + glob.glob(os.path.join(DATA, "golden", "images", "*.png")))


def Server(*args):  # on the golden model
    return serve_util.Server(BIN, MODEL, *args)


def predict_line(path, *extra):
    return subprocess.run([BIN, "predict", "--json", "--model", MODEL, *extra, path], check=True, capture_output=True, text=True).stdout


def multipart(name, data, field="file"):
    b = "----cgradtestboundary"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: image/jpeg\r\n\r\n"
            % (b, b, field, name)).encode() + data + ("\r\n--%s--\r\n" % b).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + b}


def is_error(status, body, want):
    try:
        return status == want and "error" in json.loads(body)
    except ValueError:
        return False


expected = {p: predict_line(p) for p in IMAGES}
raw = {p: open(p, "rb").read() for p in IMAGES}
q = lambda s: urllib.parse.quote(s, safe="")

s = Server("--max-upload-mb", "1", "--timeout", "2")
# ---- every golden image, exactly predict --json's line ----
for p in IMAGES:
    st, h, body = s.request("POST", "/predict?name=" + q(p), raw[p])
    check("raw %s equals predict --json" % os.path.basename(p), st == 200 and body.decode() == expected[p], (st, body, expected[p]))
    check("raw %s: application/json" % os.path.basename(p), h.get("Content-Type") == "application/json", h)
    mb, mh = multipart(os.path.basename(p), raw[p])
    st, h, body = s.request("POST", "/predict", mb, mh)
    want = json.loads(expected[p])
    want["image"] = os.path.basename(p)
    check("multipart %s equals predict --json" % os.path.basename(p), st == 200 and json.loads(body) == want, (st, body))
p0 = IMAGES[0]
st, _, body = s.request("POST", "/predict?top=2&name=" + q(p0), raw[p0])
check("?top=2 equals predict --top 2 --json", st == 200 and body.decode() == predict_line(p0, "--top", "2"), body)
st, _, body = s.request("POST", "/predict?top=50&name=" + q(p0), raw[p0])
check("?top above the labels gives them all, as predict", st == 200 and body.decode() == predict_line(p0, "--top", "50"), body)
st, _, body = s.request("GET", "/health")
check("GET /health", st == 200 and json.loads(body)["status"] == "ok", body)
st, h, body = s.request("GET", "/")
check("GET / is the page, self-contained", st == 200 and b"<html" in body and b"http" not in body.replace(b"http-equiv", b"")
      and h["Content-Type"].startswith("text/html"), body[:200])
st, h, body = s.request("POST", "/explain?method=relevance", raw[p0])
check("POST /explain is a PNG", st == 200 and body[:8] == b"\x89PNG\r\n\x1a\n" and h["Content-Type"] == "image/png", body[:20])
st, h, body = s.request("POST", "/explain?format=json&method=rollout&name=" + q(p0), raw[p0])
ex = subprocess.run([BIN, "explain", "--model", MODEL, p0], capture_output=True, text=True).stdout
check("POST /explain?format=json equals deit_lora explain", st == 200 and body.decode() == ex, (body, ex))

# ---- bad requests ----
bad = [
    ("garbage body", "POST", "/predict", b"this is not an image", {}, 400),
    ("empty body", "POST", "/predict", b"", {}, 400),
    ("truncated JPEG", "POST", "/predict", raw[p0][: len(raw[p0]) // 2], {}, 400),
    ("truncated PNG", "POST", "/predict", raw[IMAGES[-1]][:100], {}, 400),
    ("multipart without a file", "POST", "/predict", b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
     {"Content-Type": "multipart/form-data; boundary=b"}, 400),
    ("multipart cut short", "POST", "/predict", multipart("a.jpg", raw[p0])[0][:300], multipart("a.jpg", raw[p0])[1], 400),
    ("multipart without a boundary", "POST", "/predict", b"x", {"Content-Type": "multipart/form-data"}, 400),
    ("top=0", "POST", "/predict?top=0", raw[p0], {}, 400),
    ("top=abc", "POST", "/predict?top=abc", raw[p0], {}, 400),
    ("explain method", "POST", "/explain?method=gradcam", raw[p0], {}, 400),
    ("explain format", "POST", "/explain?format=bmp", raw[p0], {}, 400),
    ("unknown path", "GET", "/nope", None, {}, 404),
    ("unknown path, POST", "POST", "/predict/extra", raw[p0], {}, 404),
    ("unknown path, a large body", "POST", "/upload", b"\xff" * (900 * 1024), {}, 404),
    ("GET /predict with a large body", "GET", "/predict", b"\xff" * (900 * 1024), {}, 405),
    ("GET /predict", "GET", "/predict", None, {}, 405),
    ("POST /health", "POST", "/health", b"x", {}, 405),
    ("DELETE /", "DELETE", "/", None, {}, 405),
    ("body over the limit", "POST", "/predict", b"\xff" * (1536 * 1024), {}, 413),
]
for name, m, path, body, hdr, want in bad:
    st, h, got = s.request(m, path, body, hdr)
    check("%s -> %d with a JSON error" % (name, want), is_error(st, got, want), (st, got[:200]))
    if want == 405:
        check("%s: Allow header" % name, h.get("Allow") in ("GET", "POST"), h)


# a chunked body over the limit (no Content-Length to refuse it early)
def chunked_over_limit():
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    c.putrequest("POST", "/predict")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    try:
        for _ in range(24):
            chunk = b"\xff" * 65536
            c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        return r.status, r.read()
    except (ConnectionError, BrokenPipeError):
        return "closed", b""
    finally:
        c.close()


st, body = chunked_over_limit()
check("chunked body over the limit -> 413", is_error(st, body, 413), (st, body[:200]))


# a client that waits for "100 Continue" gets its 413 before sending the body
def expect_continue():
    k = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    k.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            part = k.recv(4096)
            if not part:
                break
            got += part
    finally:
        k.close()
    return got


head = expect_continue()
check("Expect: 100-continue over the limit -> 413 at once", head.startswith(b"HTTP/1.1 413"), head[:100])

# ---- a stalled client is cut off (--timeout 2), and others are served meanwhile ----
def stalled(data):
    k = socket.create_connection(("127.0.0.1", s.port))
    k.sendall(data)
    k.settimeout(10)
    t0 = time.time()
    try:
        while k.recv(4096):
            pass
    except socket.timeout:
        return None
    finally:
        k.close()
    return time.time() - t0


results = {}
threads = [threading.Thread(target=lambda d=d, n=n: results.__setitem__(n, stalled(d)))
           for n, d in (("body", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + raw[p0][:100]),
                        ("headers", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le"))]
for t in threads:
    t.start()
time.sleep(0.3)
st, _, body = s.request("POST", "/predict?name=" + q(p0), raw[p0])
check("served while two clients stall", st == 200 and body.decode() == expected[p0], st)
for t in threads:
    t.join()
for n in ("body", "headers"):
    check("a client stalled in its %s is disconnected after the timeout" % n, results.get(n) is not None and results[n] < 8,
          results.get(n))

# ---- load: 1000 requests, 16 at a time, good and bad mixed ----
def one(i):
    p = IMAGES[i % len(IMAGES)]
    kind = i % 5
    if kind == 3:
        st, _, body = s.request("POST", "/predict", b"\x89PNG\r\n\x1a\n" + b"\0" * (i % 300), {})
        return is_error(st, body, 400), ("bad png", st, body[:100])
    if kind == 4:
        st, _, body = s.request("GET", "/missing/%d" % i)
        return is_error(st, body, 404), ("404", st)
    st, _, body = s.request("POST", "/predict?name=" + q(p), raw[p])
    return st == 200 and body.decode() == expected[p], (p, st, body[:200])


def load(n, start):
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        return list(ex.map(one, range(start, start + n)))


load(200, 0)  # warm up: threads, allocator arenas
rss0 = s.rss_kib()
t0 = time.time()
res = load(1000, 200)
dt = time.time() - t0
rss1 = s.rss_kib()
wrong = [d for ok, d in res if not ok]
check("1000 mixed requests, 16 at a time: every answer right", not wrong, wrong[:3])
st, _, body = s.request("GET", "/health")
check("alive after the load", st == 200, st)
if os.environ.get("CGRAD_SANITIZED"):
    print("RSS not checked: a sanitizer build (LeakSanitizer checks at exit)")
else:
    check("RSS flat over 1000 requests (%d -> %d KiB)" % (rss0, rss1), rss1 - rss0 < 8192, (rss0, rss1))
print("load: 1000 requests in %.2f s; RSS %d -> %d KiB" % (dt, rss0, rss1))

# ---- metrics ----
st, h, body = s.request("GET", "/metrics")
text = body.decode()
metric = lambda name: sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))
check("/metrics: Prometheus text", st == 200 and h["Content-Type"].startswith("text/plain; version=0.0.4") and "# TYPE deit_lora_requests_total counter" in text, h)
check("/metrics counts the 200s of /predict", metric('deit_lora_requests_total{path="/predict",code="200"}') >= 720, text[:500])
check("/metrics counts the 404s", metric('deit_lora_requests_total{path="other",code="404"}') >= 200, text[:500])
check("/metrics: the latency histogram", metric("deit_lora_request_duration_seconds_count") >= 960, text[:300])
b1, bn = metric('deit_lora_batch_size_bucket{le="1"}'), metric("deit_lora_batch_size_count")
check("concurrent requests were batched (%d of %d batches had more than one image)" % (bn - b1, bn), bn > b1, (b1, bn))
code = s.stop()
check("SIGTERM: exit 0", code == 0, code)

# ---- a full queue answers 503: one waiting slot, and its job waits for company ----
s = Server("--queue", "1", "--max-batch", "2", "--batch-wait-ms", "1500")
def wait_queued(server):
    """until a request waits in the queue (from /metrics), at most 10 s"""
    for _ in range(200):
        m = server.request("GET", "/metrics")[2].decode()
        if "\ndeit_lora_queue_depth 1\n" in m:
            return True
        time.sleep(0.05)
    return False


first = concurrent.futures.ThreadPoolExecutor(1).submit(s.request, "POST", "/predict?name=" + q(p0), raw[p0])
check("a request waits in the queue", wait_queued(s))
st, h, body = s.request("POST", "/predict", raw[p0])
check("queue full -> 503 with Retry-After", is_error(st, body, 503) and "Retry-After" in h, (st, body))
st, _, body = first.result()
check("the queued request is answered", st == 200 and body.decode() == expected[p0], st)

# ---- SIGTERM drains: a request in flight finishes, then exit 0 ----
inflight = concurrent.futures.ThreadPoolExecutor(1).submit(s.request, "POST", "/predict?name=" + q(p0), raw[p0])
check("a request in flight", wait_queued(s))
s.p.send_signal(signal.SIGTERM)
st, _, body = inflight.result()
check("SIGTERM: the request in flight gets its answer", st == 200 and body.decode() == expected[p0], st)
try:
    code = s.p.wait(timeout=20)
except subprocess.TimeoutExpired:
    s.p.kill()
    code = None
check("SIGTERM: exit 0 after draining", code == 0, (code, s.p.stderr.read()))
try:
    socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
    check("stopped: the port is closed", False)
except OSError:
    check("stopped: the port is closed", True)

# ---- with an adapter; refusals at start ----
s = Server("--adapter", ADAPTER)
for p in IMAGES:
    st, _, body = s.request("POST", "/predict?name=" + q(p), raw[p])
    check("with --adapter, %s: equals predict --adapter --json" % os.path.basename(p),
          st == 200 and body.decode() == predict_line(p, "--adapter", ADAPTER), body)
s.stop()

# ---- several images in one request (a multipart form with several files): a JSON list, in order,
# an entry per image (a failed one says why); more than --max-batch refused; explain takes one ----
def multipart_many(files):
    b = "----cgradmany"
    body = b"".join(("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\nContent-Type: image/jpeg\r\n\r\n"
                     % (b, n)).encode() + d + b"\r\n" for n, d in files) + ("--%s--\r\n" % b).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + b}


s = Server("--max-batch", "4", "--cors-origin", "https://example.org")
two = IMAGES[:2]
body, hdr = multipart_many([(os.path.basename(p), raw[p]) for p in two] + [("broken.jpg", b"not an image")])
st, h, got = s.request("POST", "/predict?top=3", body, hdr)
try:
    lst = json.loads(got)
except ValueError:
    lst = None
check("three files: a list of three, 200", st == 200 and isinstance(lst, list) and len(lst) == 3, (st, got[:200]))
if isinstance(lst, list) and len(lst) == 3:
    for i, p in enumerate(two):
        want = json.loads(predict_line(p, "--top", "3"))
        want["image"] = os.path.basename(p)
        check("list entry %d equals predict --json for its image" % i, lst[i] == want, (lst[i], want))
    check("the broken file's entry names it and says why", lst[2].get("image") == "broken.jpg" and lst[2].get("status") == 400
          and "error" in lst[2], lst[2])
body, hdr = multipart_many([("x%d.jpg" % i, raw[IMAGES[0]]) for i in range(5)])
st, _, got = s.request("POST", "/predict", body, hdr)
check("five files with --max-batch 4: 400 naming --max-batch", is_error(st, got, 400) and b"--max-batch" in got, got)
body, hdr = multipart_many([(os.path.basename(p), raw[p]) for p in two])
st, _, got = s.request("POST", "/explain", body, hdr)
check("explain with two files: 400", is_error(st, got, 400), got)
# ---- --cors-origin: the answers carry Access-Control-Allow-Origin, OPTIONS is the preflight ----
st, h, _ = s.request("POST", "/predict", raw[IMAGES[0]])
check("--cors-origin: the answer allows the origin", st == 200 and h.get("Access-Control-Allow-Origin") == "https://example.org"
      and h.get("Vary") == "Origin", h)
st, h, got = s.request("OPTIONS", "/predict", None, {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
check("OPTIONS: 204, the methods and headers allowed", st == 204 and "POST" in h.get("Access-Control-Allow-Methods", "")
      and h.get("Access-Control-Allow-Headers") == "Content-Type" and got == b"", (st, h))
s.stop()
s = Server()
st, h, _ = s.request("GET", "/health")
check("without --cors-origin: no Access-Control header", "Access-Control-Allow-Origin" not in h, h)
st, h, got = s.request("OPTIONS", "/predict")
check("without --cors-origin: OPTIONS is 405", is_error(st, got, 405), (st, got))
s.stop()
# ---- --int8: /predict answers what predict --int8 --json prints; /health says so; relevance refused ----
s = Server("--int8", "--adapter", ADAPTER)
for p in IMAGES[:3]:
    st, _, body = s.request("POST", "/predict?name=" + q(p), raw[p])
    want = predict_line(p, "--int8", "--adapter", ADAPTER)
    check("--int8: %s equals predict --int8 --json" % os.path.basename(p), st == 200 and body.decode() == want, (st, body, want))
check("--int8 answers differ from float32's (int8 ran)", body.decode() != predict_line(p, "--adapter", ADAPTER), body)
st, _, body = s.request("GET", "/health")
check("--int8: /health says int8", st == 200 and json.loads(body)["int8"] is True, body)
st, _, got = s.request("POST", "/explain?method=relevance", raw[IMAGES[0]])
check("--int8: /explain?method=relevance is 400, named", is_error(st, got, 400) and b"relevance" in got, got)
st, _, got = s.request("POST", "/explain?method=rollout&format=json", raw[IMAGES[0]])
check("--int8: /explain?method=rollout works", st == 200 and json.loads(got)["method"] == "rollout", got)
s.stop()
r = subprocess.run([BIN, "serve", "--model", MODEL, "--cors-origin", "a, b"], capture_output=True, text=True, timeout=30)
check("--cors-origin with two origins: exit 2, named", r.returncode == 2 and "--cors-origin" in r.stderr, r.stderr)
r = subprocess.run([BIN, "serve", "--model", MODEL, "--host", "example.org"], capture_output=True, text=True, timeout=30)
check("--host that is not an address: exit 2, named", r.returncode == 2 and "--host" in r.stderr, r.stderr)
r = subprocess.run([BIN, "serve", "--model", os.path.join(DATA, "missing")], capture_output=True, text=True, timeout=30)
check("a missing model: exit 2, named", r.returncode == 2 and "missing" in r.stderr, r.stderr)
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
r = subprocess.run([BIN, "serve", "--model", MODEL, "--port", str(busy.getsockname()[1])], capture_output=True, text=True, timeout=30)
check("a port in use: exit 2, named", r.returncode == 2 and "cannot listen" in r.stderr, r.stderr)
busy.close()
done()
