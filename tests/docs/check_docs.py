"""The project's own documents cite only what is there: every relative link in README.md,
BENCHMARKS.md and docs/*.md resolves, and every file path in backticks under one of the project's
folders (`tests/apps/serve_test.py`, `tensor/qgemm.c`) names a file or folder that exists.
Usage: check_docs.py SOURCE_ROOT. Prints "N passed, N failed"."""
import glob, os, re, sys

root = sys.argv[1]
FOLDERS = ("tensor", "autograd", "nn", "optim", "data", "train", "models", "apps", "tests", "bench", "examples", "docs", "fuzz", "cmake")
docs = [os.path.join(root, f) for f in ("README.md", "BENCHMARKS.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
passed = failed = 0
for doc in docs:
    text = open(doc, encoding="utf-8").read()
    here = os.path.dirname(doc)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = os.path.normpath(os.path.join(here, target.split("#")[0]))
        if os.path.exists(path):
            passed += 1
        else:
            failed += 1
            print("FAIL: %s links to %s, which is not there" % (os.path.relpath(doc, root), target))
    for cited in re.findall(r"`([A-Za-z0-9_./-]+)`", text):
        first = cited.split("/")[0]
        if first not in FOLDERS or "/" not in cited or not re.search(r"\.[a-z]+$|/$", cited) or "*" in cited:
            continue
        if os.path.exists(os.path.join(root, cited)):
            passed += 1
        else:
            failed += 1
            print("FAIL: %s cites %s, which is not in the project" % (os.path.relpath(doc, root), cited))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
