#!/usr/bin/env python3
"""Compare two workspaces' targets/ for the determinism golden test.

Everything must be byte-identical except what a measurement changes: the
latency figures of report.json (performance.measured), and through them the
rendered reports and the manifest's digests of those files.  Prints one line
per difference; exit status 1 when there is any.
"""
import json
import os
import sys


def measured_free(path):
    with open(path) as f:
        r = json.load(f)
    r["performance"].pop("measured", None)
    return r


def manifest_free(path):
    with open(path) as f:
        m = json.load(f)
    m["files"] = [x for x in m["files"] if not x["name"].startswith("report.")]
    m["steps"] = [s for s in m["steps"] if s["kind"] not in ("measure", "report")]
    return m


def main():
    a, b = sys.argv[1:3]
    bad = 0
    for target in sorted(os.listdir(a)):
        fa, fb = sorted(os.listdir(os.path.join(a, target))), sorted(os.listdir(os.path.join(b, target)))
        if fa != fb:
            print("%s: files differ: %s vs %s" % (target, fa, fb))
            bad = 1
            continue
        for name in fa:
            pa, pb = os.path.join(a, target, name), os.path.join(b, target, name)
            if name in ("report.md", "report.html"):
                continue
            if name == "report.json":
                same = measured_free(pa) == measured_free(pb)
            elif name == "manifest.json":
                same = manifest_free(pa) == manifest_free(pb)
            else:
                same = open(pa, "rb").read() == open(pb, "rb").read()
            if not same:
                print("%s/%s differs" % (target, name))
                bad = 1
    sys.exit(bad)


if __name__ == "__main__":
    main()
