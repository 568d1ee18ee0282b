"""deit_lora serve against slow and hostile clients on 127.0.0.1: 64 clients that drip their headers
a byte a second (slowloris), from one address, while /health and /metrics must keep answering
within a couple of seconds; 64 that send their headers and then drip the body; a whole-request
deadline (--request-timeout) that cuts a dripping client even though it is never idle; and
/metrics counting what was cut. Every loop is bounded in count and time.
Usage: serve_slow_test.py DEIT_LORA DATA_DIR. Standard library only. Prints "N passed, N failed"."""
import http.client, json, os, signal, socket, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, done  # noqa: E402
import serve_util  # noqa: E402

BIN, DATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(DATA, "golden", "tiny")


def Server(*args):  # on the golden model
    return serve_util.Server(BIN, MODEL, *args)


def drip(port, head, stop, stats, body_after=None):
    """one slow client: HEAD's bytes one a second (or all of HEAD, then BODY_AFTER's a byte a second)"""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        stats["refused"] += 1
        return
    t0 = time.monotonic()
    data = head if body_after is None else body_after
    try:
        if body_after is not None:
            s.sendall(head)
        for b in data:
            if stop.is_set():
                break
            s.sendall(bytes([b]))
            time.sleep(1.0)
        stats["held"] += 1
    except OSError:  # the server cut us off
        stats["cut"] += 1
        stats["cut_after"].append(time.monotonic() - t0)
    finally:
        s.close()


def slow_crowd(server, n, seconds, body=False):
    stop = threading.Event()
    stats = {"refused": 0, "held": 0, "cut": 0, "cut_after": []}
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    post = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    ts = [threading.Thread(target=drip, args=(server.port, post if body else head, stop, stats, b"x" * 200 if body else None))
          for _ in range(n)]
    for t in ts:
        t.start()
        time.sleep(0.005)
    time.sleep(1.5)  # the crowd holds every slot now
    lat = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        try:
            st, _, _ = server.request("GET", "/health", timeout=10)
            lat.append((time.monotonic() - t0, st))
        except OSError as e:
            lat.append((99.0, str(e)))
        time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join(timeout=5)
    return lat, stats


srv = Server("--max-connections", "64")
try:
    lat, stats = slow_crowd(srv, 64, 6)
    worst = max(l for l, _ in lat)
    check("slowloris (64 clients dripping headers): /health answers every time (worst %.2f s, %d tries)" % (worst, len(lat)),
          all(st == 200 for _, st in lat) and worst < 3.0, lat)
    st, _, body = srv.request("GET", "/metrics")
    text = body.decode()
    check("/metrics answers during and after, and counts the clients let go",
          st == 200 and 'deit_lora_connections_cut_total{reason="evicted"}' in text and
          int(text.split('reason="evicted"} ')[1].split()[0]) > 0, text[-600:])
    lat, stats = slow_crowd(srv, 64, 4, body=True)
    worst = max(l for l, _ in lat)
    check("64 clients dripping their bodies: /health answers every time (worst %.2f s)" % worst,
          all(st == 200 for _, st in lat) and worst < 3.0, lat)
    st, _, _ = srv.request("GET", "/health")
    check("the server is still healthy after the crowds left", st == 200)
finally:
    srv.stop()

# the whole-request deadline: a client that never goes idle (a byte a second) is cut after --request-timeout
srv = Server("--request-timeout", "2", "--timeout", "30")
try:
    stop = threading.Event()
    stats = {"refused": 0, "held": 0, "cut": 0, "cut_after": []}
    t = threading.Thread(target=drip, args=(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 30 + b"\r\n\r\n", stop, stats))
    t.start()
    t.join(timeout=20)
    stop.set()
    check("a client dripping its headers is cut at the deadline (after %s s)" % stats["cut_after"],
          stats["cut"] == 1 and 1.5 < stats["cut_after"][0] < 5, stats)
    st, _, body = srv.request("GET", "/metrics")
    check("/metrics counts the deadline", 'deit_lora_connections_cut_total{reason="deadline"} 1' in body.decode())
finally:
    srv.stop()
# observability: an access log (a line per request), latency by path, process metrics, the build,
# the model's identity in /health
import tempfile
log = os.path.join(tempfile.mkdtemp(), "access.log")
srv = Server("--access-log", log)
try:
    st, _, body = srv.request("GET", "/health")
    h = json.loads(body)
    check("/health names the model and the version", st == 200 and h["model"] == MODEL and h["adapter"] is None and h["version"], h)
    srv.request("GET", "/nope?name=secret")
    st, _, body = srv.request("GET", "/metrics")
    text = body.decode()
    for want in ('deit_lora_request_duration_seconds_count{path="/health"} 1', "process_cpu_seconds_total ", "process_resident_memory_bytes ",
                 "process_open_fds ", "process_start_time_seconds ", "cgrad_build_info{version="):
        check("/metrics has %s" % want.split("{")[0].strip(), want in text, text[-800:])
finally:
    srv.stop()
lines = open(log).read().splitlines()
check("the access log: a line per request, time, client, method, path (no query), status, bytes, seconds",
      len(lines) == 3 and lines[0].split()[1:6] == ["127.0.0.1", "GET", '"/health"', "200", lines[0].split()[5]]
      and lines[1].split()[3:5] == ['"/nope"', "404"] and "secret" not in lines[1] and lines[0].endswith(lines[0].split()[-1]), lines)

# memory: images are admitted by their decoded size (from the header alone) under --decode-memory-mb,
# and a configuration whose worst case exceeds --max-memory-mb does not start
import struct, zlib
ihdr = struct.pack(">IIBBBBB", 3000, 3000, 8, 2, 0, 0, 0)
png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\0" * 64
srv = Server("--decode-memory-mb", "16")
try:
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    c.request("POST", "/predict", body=png, headers={"Content-Type": "image/png"})
    r = c.getresponse()
    body = r.read().decode()
    check("an image whose decoded size exceeds the decode budget: 413, named, before decoding",
          r.status == 413 and "3000x3000 pixels need" in body and "--decode-memory-mb" in body, (r.status, body))
    st, _, _ = srv.request("GET", "/health")
    check("the server is healthy after it", st == 200)
    # names: a surrogate or an overlong form is refused; a long name is cut on a character boundary
    img = open(os.path.join(DATA, "golden", "images", "rgba_200x150.png"), "rb").read()
    for q, want in (("%ED%A0%80x", 400), ("%C0%AFx", 400), ("%C3%A9" * 200, 200)):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.request("POST", "/predict?name=" + q, body=img, headers={"Content-Type": "image/png"})
        r = c.getresponse()
        raw = r.read()
        ok = r.status == want
        if ok and want == 200:
            name = json.loads(raw.decode("utf-8"))["image"]
            ok = len(name.encode()) <= 255 and set(name) == {"\u00e9"}
        check("?name=%s...: %d, the JSON valid UTF-8" % (q[:12], want), ok, (r.status, raw[:200]))
finally:
    srv.stop()
r = subprocess.run([BIN, "serve", "--model", MODEL, "--port", "0", "--max-batch", "256", "--max-memory-mb", "512"],
                   capture_output=True, text=True, timeout=30)
check("a configuration above --max-memory-mb is refused at start, naming the parts",
      r.returncode == 2 and "above --max-memory-mb 512" in r.stderr and "--max-batch" in r.stderr, r.stderr)
done()
