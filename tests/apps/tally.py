"""The Python test scripts' counter: check(name, ok, detail) records one assertion (printing the
failures), done() prints the "N passed, N failed" line the suite counts and exits 1 on a failure."""
import sys

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", name, str(detail)[:500])


def done():
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
