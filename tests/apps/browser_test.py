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
    # the keyboard: Tab from the page's start reaches the drop zone, then the file chooser; Enter on the
    # drop zone opens the chooser (a click on the file input, seen by a listener)
    def js(script, *args):
        return wd("POST", s + "/execute/sync", {"script": script, "args": list(args)})

    def keys(k):
        wd("POST", s + "/actions", {"actions": [{"type": "key", "id": "kb", "actions": [{"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]}]})
    js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    focus = []
    for _ in range(4):
        keys("\ue004")  # Tab
        focus.append(js("return document.activeElement ? document.activeElement.id : ''"))
    check("Tab reaches the drop zone, then the file chooser", "drop" in focus and "file" in focus and focus.index("drop") < focus.index("file"), focus)
    js("window.__chooser = 0; document.getElementById('file').addEventListener('click', (e) => { window.__chooser++; e.preventDefault(); })")
    js("document.getElementById('drop').focus()")
    keys("\ue007")  # Enter
    keys("\ue00d")  # Space
    check("Enter and Space on the drop zone open the chooser", js("return window.__chooser") == 2, js("return window.__chooser"))
    check("the result is announced (a live status region)",
          js("const e = document.getElementById('status'); return e.getAttribute('aria-live') + '|' + e.textContent").startswith("polite|")
          and want[0]["label"] in js("return document.getElementById('status').textContent"), js("return document.getElementById('status').textContent"))
    check("errors go to an alert region", js("return document.getElementById('error').getAttribute('role')") == "alert")
    check("a favicon in the page (no /favicon.ico request)", js("return !!document.querySelector('link[rel=icon]')"))
    check("a message without JavaScript", "JavaScript" in js("return document.querySelector('noscript').textContent"))
    # axe-core's checks on the page with a result, WCAG A and AA: no violation
    axe_js = os.environ.get("AXE_JS", "")
    if axe_js and os.path.exists(axe_js):
        js(open(axe_js).read())
        res = wd("POST", s + "/execute/async", {"script": "const done = arguments[arguments.length - 1]; axe.run(document, "
                 "{runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(r => done(r.violations.map("
                 "v => v.id + ': ' + v.nodes.length)), e => done(['axe failed: ' + e]))", "args": []})
        check("axe-core: no WCAG 2.1 A/AA violation", res == [], res)
    else:
        print("skip: axe-core's checks (npm's axe-core could not be installed)")
    png = base64.b64decode(wd("GET", s + "/screenshot"))
    check("a screenshot", png[:8] == b"\x89PNG\r\n\x1a\n", png[:8])
    os.makedirs(os.path.dirname(os.path.abspath(SHOT)), exist_ok=True)
    open(SHOT, "wb").write(png)
    # a failure clears the last result: a file that is not an image
    bad = os.path.join(profile, "not_an_image.jpg")
    open(bad, "wb").write(b"this is not a JPEG")
    el = wd("POST", s + "/element", {"using": "css selector", "value": "#file"})
    wd("POST", s + "/element/%s/value" % list(el.values())[0], {"text": bad})
    for _ in range(300):
        if js("return document.body.dataset.state") == "error":
            break
        time.sleep(0.1)
    check("a new error clears the old result", js("return document.body.dataset.state") == "error" and
          js("return document.querySelectorAll('#bars .bar').length") == 0 and not js("return document.getElementById('view').getAttribute('src')")
          and "not_an_image.jpg" in js("return document.getElementById('error').textContent"),
          js("return document.getElementById('error').textContent"))
    st = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    check("no request for a missing path (a favicon's 404)", 'path="other"' not in st, [l for l in st.splitlines() if 'path="other"' in l])
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
