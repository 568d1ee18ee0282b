"""The serve page in a real browser: Debian's headless chromium driven through chromedriver's
WebDriver protocol (plain HTTP and JSON, standard library only). Starts deit_lora serve on a free
port, opens the page, chooses IMAGE in the file input, waits for the bars and the map, checks the
top label against `deit_lora predict`, and saves a screenshot.
Usage: browser_test.py DEIT_LORA MODEL_DIR IMAGE SCREENSHOT.png [ADAPTER_DIR]
Prints "N passed, N failed"; exit 77 (skip) without chromium and chromedriver."""
import base64, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, done  # noqa: E402

BIN, MODEL, IMAGE, SHOT = sys.argv[1:5]
ADAPTER = sys.argv[5] if len(sys.argv) > 5 else None
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
driver = shutil.which("chromedriver")
if not chromium or not driver:
    print("skip: chromium and chromedriver are not installed (Debian: chromium chromium-driver)")
    sys.exit(77)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wd(method, path, body=None, timeout=60):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (dport, path), method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["value"]


adapter = ["--adapter", ADAPTER] if ADAPTER else []
server = subprocess.Popen([BIN, "serve", "--model", MODEL, "--port", "0"] + adapter, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
line = server.stdout.readline()
port = int(line.split("127.0.0.1:")[1].split()[0])
dport = free_port()
profile = tempfile.mkdtemp()
chrome = subprocess.Popen([driver, "--port=%d" % dport], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sid = None
try:
    for _ in range(100):
        try:
            if wd("GET", "/status", timeout=2).get("ready"):
                break
        except OSError:
            pass
        time.sleep(0.1)
    caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900",
        "--user-data-dir=" + profile, "--no-first-run", "--disable-extensions"]}}
    sid = wd("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
    s = "/session/" + sid
    wd("POST", s + "/url", {"url": "http://127.0.0.1:%d/" % port})
    check("the page loads", wd("POST", s + "/execute/sync", {"script": "return document.title", "args": []}) == "deit_lora")
    el = wd("POST", s + "/element", {"using": "css selector", "value": "#file"})
    eid = list(el.values())[0]
    wd("POST", s + "/element/%s/value" % eid, {"text": os.path.abspath(IMAGE)})
    state = None
    for _ in range(300):
        state = wd("POST", s + "/execute/sync", {"script": "return document.body.dataset.state || ''", "args": []})
        if state in ("done", "error"):
            break
        time.sleep(0.1)
    err = wd("POST", s + "/execute/sync", {"script": "return document.getElementById('error').textContent", "args": []})
    check("the page shows a result", state == "done", (state, err))
    labels = wd("POST", s + "/execute/sync", {"script": "return [...document.querySelectorAll('#bars .label')].map(e => e.textContent)", "args": []})
    want = json.loads(subprocess.run([BIN, "predict", "--json", "--model", MODEL] + adapter + [IMAGE], check=True,
                                     capture_output=True, text=True).stdout)["top"]
    check("five bars", len(labels) == min(5, len(want)), labels)
    check("the top bar is predict's top label", labels[:1] == [want[0]["label"]], (labels, want[0]))
    check("the bars follow predict's order", labels == [t["label"] for t in want], (labels, want))
    shown = wd("POST", s + "/execute/sync", {"script": "const i = document.getElementById('view'); return i.complete ? i.naturalWidth : 0", "args": []})
    check("the map is shown", shown > 0, shown)
    png = base64.b64decode(wd("GET", s + "/screenshot"))
    check("a screenshot", png[:8] == b"\x89PNG\r\n\x1a\n", png[:8])
    os.makedirs(os.path.dirname(os.path.abspath(SHOT)), exist_ok=True)
    open(SHOT, "wb").write(png)
finally:
    if sid:
        try:
            wd("DELETE", "/session/" + sid, timeout=20)
        except OSError:
            pass
    chrome.terminate()
    server.terminate()
    chrome.wait(timeout=20)
    server.wait(timeout=30)
    shutil.rmtree(profile, ignore_errors=True)
done()
