#!/bin/sh
# report: the rendered reports in a real browser, and report.json against its schema.
#
#   sh tests/report/run.sh build/report/render      (make report-test)
#
#   1. Each example report (tests/data/reports/*.json) is rendered with the
#      driver (tests/report/render.c) to report.md and report.html, plus one
#      page combining them all.
#      The reports mcbuild wrote in the golden test "quality" join them.
#   2. Each HTML page is opened in headless Chromium (tests/report/browse.mjs,
#      over the DevTools protocol).  The pages hold no script, so any console
#      message, uncaught exception, log entry (a Content-Security-Policy
#      violation, a blocked resource) or failed load fails the test.  A
#      screenshot of each page is saved as build/report/<name>.png.  Two
#      deliberately bad pages must be caught, so that the check is known to
#      work.
#   3. Every example validates against tests/data/report.schema.json (JSON
#      Schema 2020-12, python3-jsonschema); tests/report/broken.json must not
#      validate, and the renderer must refuse it too.
#
# Closing line "report: N passed, N failed[, N skipped]"; exit 1 on any
# failure.  Without Chromium, Node or python3-jsonschema those parts are
# SKIPPED, loudly.  About 10 s.
set -u

RENDER=${1:?usage: run.sh RENDER}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/build/report
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
# Debian's python3 (the first one on PATH may be a pyenv one without its packages)
PYTHON=${PYTHON:-/usr/bin/python3}
SCHEMA=$ROOT/tests/data/report.schema.json
npass=0 nfail=0 nskip=0

pass() { npass=$((npass + 1)); echo "ok   $*"; }
fail() { nfail=$((nfail + 1)); echo "FAIL $*"; }
skip() { nskip=$((nskip + 1)); echo "SKIPPED $*"; }

mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.log "$OUT"/*.err

# 1. render
pages=
for f in "$ROOT"/tests/data/reports/*.json; do
	name=$(basename "$f" .json)
	rm -rf "$OUT/$name"
	if "$RENDER" "$f" "$OUT/$name" 2> "$OUT/$name.render.log" &&
	   [ -s "$OUT/$name/report.md" ] && [ -s "$OUT/$name/report.html" ]; then
		pass "render $name"
		pages="$pages $name=$OUT/$name/report.html"
	else
		fail "render $name: $(cat "$OUT/$name.render.log")"
	fi
done
if "$RENDER" --combined "$OUT/combined.html" "$ROOT"/tests/data/reports/*.json \
	2> "$OUT/combined.render.log"; then
	pass "render combined"
	pages="$pages combined=$OUT/combined.html"
else
	fail "render combined: $(cat "$OUT/combined.render.log")"
fi

# ... and the pages mcbuild itself wrote in the golden test "quality" (make
# golden runs before this): its targets' report.html and the page of
# `mcbuild report --html`
built=$ROOT/build/tests/cli/quality
if [ -f "$built/combined.html" ]; then
	for f in "$built"/*/*/report.html "$built/combined.html"; do
		[ -f "$f" ] || continue
		name=mcbuild-$(echo "${f#$built/}" | sed -e 's#/report.html##' -e 's#[/.]#-#g')
		pages="$pages $name=$f"
	done
	pass "mcbuild-built reports found in $built"
else
	skip "mcbuild-built reports: $built/combined.html is missing (run make golden first)"
fi

# 2. the browser: every page in one headless Chromium, driven over the
# DevTools protocol by browse.mjs (Node's built-in WebSocket, no packages).
# Two deliberately bad pages must be caught: one breaking the CSP (inline
# script and style, an external image), one throwing and logging without a CSP.
node_ws=
if command -v node > /dev/null 2>&1; then
	for flag in --experimental-websocket ''; do
		if node $flag -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2> /dev/null; then
			node_ws="node $flag"
			break
		fi
	done
fi
if [ ! -x "$CHROMIUM" ]; then
	skip "browser: $CHROMIUM is missing (make deps installs chromium)"
elif [ -z "$node_ws" ]; then
	skip "browser: no node with a WebSocket (Node 20 or later; make deps installs it)"
else
	cat > "$OUT/bad-csp.html" <<'EOF'
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'">
<title>must fail</title></head><body><p style="color:red">x</p>
<script>undefined_function()</script><img alt="" src="https://example.invalid/x.png"></body></html>
EOF
	cat > "$OUT/bad-js.html" <<'EOF'
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>must fail</title></head>
<body><script>console.log("hello"); undefined_function()</script></body></html>
EOF
	$node_ws "$HERE/browse.mjs" "$CHROMIUM" "$OUT" "bad-csp=$OUT/bad-csp.html" \
		"bad-js=$OUT/bad-js.html" $pages > "$OUT/browse.log" 2> "$OUT/browse.err"
	if [ $? -gt 1 ]; then
		fail "browser: $(cat "$OUT/browse.err")"
	fi
	for bad in bad-csp bad-js; do
		if grep -q "^FAIL $bad: " "$OUT/browse.log"; then
			pass "browser: the $bad page is caught"
		else
			fail "browser: the $bad page is not caught"
		fi
	done
	for p in $pages; do
		name=${p%%=*}
		if grep -q "^ok $name " "$OUT/browse.log" && [ -s "$OUT/$name.png" ]; then
			pass "browser $name ($OUT/$name.png)"
		else
			fail "browser $(grep "^FAIL $name: " "$OUT/browse.log" || echo "$name: no result")"
		fi
	done
fi

# 3. the schema
if ! "$PYTHON" -c 'import jsonschema' 2> /dev/null; then
	skip "schema: $PYTHON has no jsonschema module (make deps installs python3-jsonschema)"
else
	validate() {
		"$PYTHON" - "$SCHEMA" "$1" <<'EOF'
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))),
                key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(str(p) for p in e.absolute_path) or "(root)", ":", e.message)
sys.exit(1 if errors else 0)
EOF
	}
	for f in "$ROOT"/tests/data/reports/*.json; do
		name=$(basename "$f" .json)
		if why=$(validate "$f" 2>&1); then
			pass "schema $name"
		else
			fail "schema $name: $why"
		fi
	done
	broken=$HERE/broken.json
	if why=$(validate "$broken" 2>&1); then
		fail "schema: broken.json validates"
	elif echo "$why" | grep -q 'quality/metrics/0/ci'; then
		pass "schema: broken.json is rejected ($(echo "$why" | head -n 1))"
	else
		fail "schema: broken.json is rejected for another reason: $why"
	fi
	if why=$("$RENDER" --check "$broken" 2>&1); then
		fail "render --check: broken.json passes"
	elif echo "$why" | grep -q 'quality.metrics\[0\].ci: expected an array of 2 numbers'; then
		pass "render --check: broken.json is rejected"
	else
		fail "render --check: broken.json is rejected with another message: $why"
	fi
fi

summary="report: $npass passed, $nfail failed"
[ $nskip -gt 0 ] && summary="$summary, $nskip skipped"
echo "$summary"
[ $nfail -eq 0 ]
