"""The library's floors: a file includes only from its own folder and the folders below it
(base, kernels, tensor, formats, autograd, nn, optim | data, train, models | apps), and nothing in
the core (the first seven) includes from above it. Usage: check_layers.py SOURCE_ROOT.
Prints "N passed, N failed"."""
import glob, os, re, sys

root = sys.argv[1]
ORDER = ["base", "kernels", "tensor", "formats", "autograd", "nn", "optim", "data", "train", "models", "apps"]
rank = {f: i for i, f in enumerate(ORDER)}
passed = failed = 0
for folder in ORDER:
    for path in sorted(glob.glob(os.path.join(root, folder, "*.[ch]")) + glob.glob(os.path.join(root, folder, "*.inc"))):
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', open(path, encoding="utf-8").read(), re.M):
            target = os.path.normpath(os.path.join(folder, inc)).split(os.sep)[0]
            if target not in rank:
                continue
            if rank[target] <= rank[folder]:
                passed += 1
            else:
                failed += 1
                print("FAIL: %s includes %s, a floor above it" % (os.path.relpath(path, root), inc))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
