"""deit_lora serve against requests whose head or framing is malformed, on raw sockets: every one gets
exactly one well-formed HTTP answer (one status line, a JSON body of the announced length, the
connection closed) at once, never a doubled answer, a 500 or a wait for the timeout, and /metrics
counts it. Valid but unusual framing (chunk extensions, trailers, pipelined requests, keep-alive)
is served as any other request.
Usage: serve_framing_test.py DEIT_LORA DATA_DIR. Standard library only. Prints "N passed, N failed"."""
import glob, json, os, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, done  # noqa: E402
import serve_util  # noqa: E402

BIN, DATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(DATA, "golden", "tiny")
IMAGE = sorted(glob.glob(os.path.join(DATA, "golden", "images", "*.png")))[0]
PIXELS = open(IMAGE, "rb").read()
EXPECTED = subprocess.run([BIN, "predict", "--json", "--model", MODEL, IMAGE], check=True, capture_output=True,
                          text=True).stdout.replace(json.dumps(IMAGE), '"upload"')


def responses(data):
    """splits what the server sent into (status, headers, body) answers; None when it is not
    well-formed HTTP/1.1 (a head without a status line, a body shorter than announced)"""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1.1 "):
            return None
        lines = head.decode("latin-1").split("\r\n")
        hdr = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.lower() in hdr:
                return None  # a header twice
            hdr[k.lower()] = v.strip()
        n = int(hdr.get("content-length", "0"))
        if len(rest) < n:
            return None
        out.append((int(lines[0].split()[1]), hdr, rest[:n]))
        data = rest[n:]
    return out


def exchange(port, raw, timeout=15):
    """sends RAW, reads until the server closes; (answers, seconds)"""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(raw)
    except OSError:
        pass
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    return responses(data), time.monotonic() - t0, data


def json_error(body):
    try:
        return "error" in json.loads(body)
    except ValueError:
        return False


H = b"Host: x\r\n"
chunked = b"POST /predict HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
BAD = [
    ("Content-Length not a number", b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400, "/predict"),
    ("Content-Length negative", b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n", 400, "/predict"),
    ("Content-Length with a sign", b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400, "/predict"),
    ("Content-Length absurd", b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n", 413,
     "/predict"),
    ("Content-Length twice, different", b"GET /health HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
     400, "/health"),
    ("Content-Length and chunked", b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     400, "/predict"),
    ("Transfer-Encoding: gzip, chunked", b"POST /predict HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501,
     "/predict"),
    ("Transfer-Encoding twice", b"POST /predict HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     501, "/predict"),
    ("a 60 KB chunk extension", chunked + b"5;" + b"a" * 60000 + b"\r\nhello\r\n0\r\n\r\n", 400, "/predict"),
    ("a chunk size not hexadecimal", chunked + b"zz\r\nhello\r\n0\r\n\r\n", 400, "/predict"),
    ("a chunk size past 2^64", chunked + b"1" * 40 + b"\r\nhello\r\n0\r\n\r\n", 400, "/predict"),
    ("a chunk longer than its size", chunked + b"3\r\nhello\r\n0\r\n\r\n", 400, "/predict"),
    ("a 60 KB trailer", chunked + b"5\r\nhello\r\n0\r\nX-T: " + b"a" * 60000 + b"\r\n\r\n", 400, "/predict"),
    ("a 70 KB header", b"GET /health HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", 431, "/health"),
    ("a 70 KB request line", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, "other"),
    ("HTTP/9.9", b"GET /health HTTP/9.9\r\n" + H + b"\r\n", 505, "/health"),
    ("not HTTP", b"GET /health FTP/1.1\r\n" + H + b"\r\n", 400, "/health"),
    ("HTTP/1.1 without Host", b"GET /health HTTP/1.1\r\n\r\n", 400, "/health"),
    ("a header line without a colon", b"GET /health HTTP/1.1\r\n" + H + b"bad header line\r\n\r\n", 400, "/health"),
    ("a space before the colon", b"GET /health HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n", 400, "/health"),
    ("a folded header", b"GET /health HTTP/1.1\r\n" + H + b"X-A: 1\r\n 2\r\n\r\n", 400, "/health"),
    ("a NUL in a header", b"GET /health HTTP/1.1\r\n" + H + b"X-A: 1\x002\r\n\r\n", 400, "/health"),
    ("a control character in the path", b"GET /hea\x01lth HTTP/1.1\r\n" + H + b"\r\n", 400, "other"),
    ("an absolute URL as the target", b"GET http://x/health HTTP/1.1\r\n" + H + b"\r\n", 400, "other"),
    ("a method that is not a token", b"G(T /health HTTP/1.1\r\n" + H + b"\r\n", 400, "/health"),
]

srv = serve_util.Server(BIN, MODEL, "--timeout", "10")
try:
    counts = {}
    for name, raw, want, path in BAD:
        ans, dt, data = exchange(srv.port, raw)
        ok = ans is not None and len(ans) == 1 and ans[0][0] == want and json_error(ans[0][2]) \
            and ans[0][1].get("connection") == "close" and ans[0][1].get("content-type") == "application/json" and dt < 3
        check("%s: one answer %d, JSON, closed, at once (%.1f s)" % (name, want, dt), ok, data[:300])
        counts[(path, want)] = counts.get((path, want), 0) + 1

    # a good request first on the connection, then a bad one: the good one answered, then one refusal
    good = b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(PIXELS) + PIXELS
    ans, dt, data = exchange(srv.port, good + b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: x1\r\n\r\n")
    check("pipelined good then bad: two answers, 200 then 400", ans is not None and [a[0] for a in ans] == [200, 400]
          and ans[0][2].decode() == EXPECTED, data[:300])
    counts[("/predict", 400)] += 1
    # valid chunked framing with extensions and trailers, split into uneven chunks
    body = b"".join(b"%x;ext=%d;q=\"v\"\r\n" % (len(PIXELS[i:i + 777]), i) + PIXELS[i:i + 777] + b"\r\n"
                    for i in range(0, len(PIXELS), 777))
    raw = chunked + body + b"0\r\nX-Trailer: yes\r\n\r\n"
    ans, dt, data = exchange(srv.port, raw.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
    check("chunked with extensions and trailers: the same answer as the raw body",
          ans is not None and len(ans) == 1 and ans[0][0] == 200 and ans[0][2].decode() == EXPECTED, data[:300])
    # two keep-alive requests, then a bad chunk in the third's body (after its head was passed on)
    raw = good + good + chunked + b"5\r\nhello\r\nqq\r\n"
    ans, dt, data = exchange(srv.port, raw)
    check("keep-alive: two answers, then one refusal for the bad chunk", ans is not None and [a[0] for a in ans] == [200, 200, 400]
          and json_error(ans[2][2]) and dt < 3, data[-300:])
    counts[("/predict", 400)] += 1
    # HTTP/1.0 without Host is fine; empty lines before a request are ignored
    ans, dt, data = exchange(srv.port, b"\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
    check("HTTP/1.0 without Host, after empty lines: 200", ans is not None and len(ans) == 1 and ans[0][0] == 200, data[:200])

    st, _, body = srv.request("GET", "/metrics")
    text = body.decode()
    for (path, code), n in sorted(counts.items()):
        line = 'deit_lora_requests_total{path="%s",code="%d"} %d' % (path, code, n)
        check("/metrics: " + line, line + "\n" in text, [l for l in text.splitlines() if "requests_total" in l])
    check("the server is alive and well", srv.request("GET", "/health")[0] == 200)
finally:
    rc = srv.stop()
check("SIGTERM: exit 0", rc == 0, rc)
done()
