"""Python's re.fullmatch (peft's rule for a string target_modules) against `deit_lora train
--target-regex`: for each pattern, the modules that get LoRA (read back from the saved adapter's
tensor names) must be the ones Python's re selects, and a pattern Python rejects, or one that
selects a module LoRA cannot wrap, must be refused with exit 2. Python's own syntax ((?:...), \b,
lookarounds, named groups, backreferences, {,n}) selects exactly what Python selects. Patterns that
backtrack without end finish within seconds and bounded memory, refused with a message (the
matcher's limits) or matched. Prints "N passed, N failed".
usage: regex_crosscheck.py DEIT_LORA TEST_DATA"""
import json, os, re, struct, subprocess, sys, tempfile

bin_, data = sys.argv[1], sys.argv[2]
model, images = os.path.join(data, "golden", "tiny"), os.path.join(data, "golden", "images")
LAYERS = json.load(open(os.path.join(model, "config.json")))["num_hidden_layers"]

# ViTForImageClassification's named_modules() (transformers 4 names), the LoRA-able linears apart
LIN = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
       "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj",
       "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
linears = {f"vit.encoder.layer.{i}.{k}": f"vit.layers.{i}.{v}" for i in range(LAYERS) for k, v in LIN.items()}
others = ["vit", "vit.embeddings", "vit.embeddings.patch_embeddings", "vit.embeddings.patch_embeddings.projection",
          "vit.embeddings.dropout", "vit.encoder", "vit.encoder.layer", "vit.layernorm", "classifier", "vit.layers"]
for i in range(LAYERS):
    p = f"vit.encoder.layer.{i}"
    others += [p] + [p + s for s in (".attention", ".attention.attention", ".attention.attention.dropout", ".attention.output",
                                      ".attention.output.dropout", ".intermediate", ".intermediate.intermediate_act_fn",
                                      ".output", ".output.dropout", ".layernorm_before", ".layernorm_after")]
    others += [f"vit.layers.{i}", f"vit.layers.{i}.attention", f"vit.layers.{i}.mlp"]  # transformers 5's containers

PATTERNS = [
    r".*\.(query|value)", r".*query", r".*\.(key|dense)", r".*dense", r"vit\.encoder\.layer\.\d+\.attention\.attention\.value",
    r".*\.layers\.\d+\.(attention\.[qkv]_proj|mlp\.fc1)", r".*layer\.0\..*", r".*layer\.0\.(attention|output)\..*dense",
    r".*\.layers?\.1\..*(query|fc2)", r".*?query|.*?fc1", r"(.*\.)?value", r".*[qv]_proj", r".*[^y]\.dense",
    r".*\.(query|value){1}", r".*\.(qu|val)[a-z]+", r".*\w+\.key", r".*\.layer\.[01]\.attention\.attention\.(query|key|value)",
    r".*\.\w\w?\w?\w?\w?", r"vit\.encoder\.layer\.0\.output\.dense|vit\.encoder\.layer\.1\.intermediate\.dense",
    # selects no module, or a module LoRA cannot wrap, or is not a regex for Python
    r"query", r".*", r".*classifier", r".*(projection|query)", r".*\.attention", r".*layernorm_.*", r".*(query",
    r".*[qv", r"a)(b", r".*\.(query|value))", r".*??query", r".**query", r".*\.(query|value){1}?value", r".*{1}{2}query",
    r"*query", r".*(|*query)", r".*(*query)", r".*\(*query", r".*\\*?query", r".*[*]?query", r".*(query|value){1,2}?", r"vit\.layers\.\d(\.attention)?(\.q_proj)?",
    # Python's syntax beyond POSIX ERE: the same selection as Python's
    r"(?:.*\.query)", r".*\bquery", r"(?i).*QUERY", r".*(?=query)query", r"(.*)\.query\1?", r".*\.(?P<m>query|value)",
    r".*(?<=\.)value", r".*(?<!attention)\.dense", r"(?P<a>.*)\.(?P=a)?value", r".*\.val{,2}ue", r".*\.qu\w{,3}",
    r".*\.(?:key|value)\Z", r"\Avit\.layers\.\d+\.mlp\.fc[12]", r".*\x2eval\u0075e", r".*\.(?#a comment)query",
]
# patterns that backtrack without end (Python itself takes minutes on some): bounded time and memory
PATHOLOGICAL = [r"(.*){1,200}(.*){1,200}(query|value)", r"(.*){1,1000}z", r"(.*.*.*.*.*.*)*zz", r"((.*)*)*\.query(.*)*x",
                r"(.*){1,1000}(.*){1,1000}(.*){1,1000}"]

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def adapter_modules(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    names = [k for k in json.loads(raw[8:8 + n]) if ".lora_A." in k]
    return {k[len("base_model.model."):k.index(".lora_A.")] for k in names}


with tempfile.TemporaryDirectory() as tmp:
    for i, pat in enumerate(PATTERNS):
        out = os.path.join(tmp, f"o{i}")
        r = subprocess.run([bin_, "train", "--model", model, "--data", images, "--label", "x", "--output", out, "--epochs", "1",
                            "--test-size", "2", "--quiet", "--target-regex", pat], capture_output=True, text=True)
        try:
            rx = re.compile(pat)
        except re.error:
            check(r.returncode == 2 and "target_modules regex" in r.stderr, f"{pat!r}: Python rejects it; exit {r.returncode}: {r.stderr.strip()}")
            continue
        want = {v4 for v4, v5 in linears.items() if rx.fullmatch(v4) or rx.fullmatch(v5)}
        bad = [o for o in others if rx.fullmatch(o)]
        if bad or not want:
            check(r.returncode == 2 and "target_modules regex" in r.stderr,
                  f"{pat!r}: Python selects {bad[:1] or 'nothing'}, must be refused; exit {r.returncode}: {r.stderr.strip()}")
        else:
            got = adapter_modules(os.path.join(out, "adapter_model.safetensors")) if r.returncode == 0 else None
            check(got == want, f"{pat!r}: exit {r.returncode} {r.stderr.strip()}; LoRA on {sorted(got or [])}, Python selects {sorted(want)}")

    import threading, time
    for i, pat in enumerate(PATHOLOGICAL):  # time, and the peak memory of the process (its own rusage)
        out = os.path.join(tmp, f"p{i}")
        t0 = time.monotonic()
        p = subprocess.Popen([bin_, "train", "--model", model, "--data", images, "--label", "x", "--output", out, "--epochs", "1",
                              "--test-size", "2", "--quiet", "--target-regex", pat], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killer = threading.Timer(60, p.kill)
        killer.start()
        err = p.stderr.read().decode(errors="replace")
        _, status, ru = os.wait4(p.pid, 0)
        killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        dt = time.monotonic() - t0
        rss_mb = ru.ru_maxrss / 1024
        check(dt < 10 and rss_mb < 1024 and (p.returncode == 0 or (p.returncode == 2 and "target_modules regex" in err)),
              f"{pat!r}: {dt:.1f} s, {rss_mb:.0f} MB, exit {p.returncode}: {err.strip()[-300:]}")

print(f"regex_crosscheck: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
