#!/bin/sh
# report: the rendered reports in a real browser, and report.json against its schema.
#
#   sh tests/report/run.sh build/report/render      (make report-test)
#
#   1. Each example report (tests/data/reports/*.json) is rendered with the
#      driver (tests/report/render.c) to report.md and report.html, plus one
#      page combining them all.
#   2. Each HTML page is opened in headless Chromium with console logging on;
#      the pages hold no script, so any console message (an uncaught error, a
#      Content-Security-Policy violation, a blocked resource) fails the test.
#      A screenshot of each page is saved as build/report/<name>.png.  A
#      deliberately bad page (inline script, style attribute, external image)
#      must be caught, so that the check is known to work.
#   3. Every example validates against tests/data/report.schema.json (JSON
#      Schema 2020-12, python3-jsonschema); tests/report/broken.json must not
#      validate, and the renderer must refuse it too.
#
# Closing line "report: N passed, N failed[, N skipped]"; exit 1 on any
# failure.  Without Chromium or python3-jsonschema those parts are SKIPPED,
# loudly.  About 2 s per page.
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
rm -f "$OUT"/*.png "$OUT"/*.log

# 1. render
pages=
for f in "$ROOT"/tests/data/reports/*.json; do
	name=$(basename "$f" .json)
	rm -rf "$OUT/$name"
	if "$RENDER" "$f" "$OUT/$name" 2> "$OUT/$name.render.log" &&
	   [ -s "$OUT/$name/report.md" ] && [ -s "$OUT/$name/report.html" ]; then
		pass "render $name"
		pages="$pages $name:$OUT/$name/report.html"
	else
		fail "render $name: $(cat "$OUT/$name.render.log")"
	fi
done
if "$RENDER" --combined "$OUT/combined.html" "$ROOT"/tests/data/reports/*.json \
	2> "$OUT/combined.render.log"; then
	pass "render combined"
	pages="$pages combined:$OUT/combined.html"
else
	fail "render combined: $(cat "$OUT/combined.render.log")"
fi

# 2. the browser.  browse NAME FILE: screenshot to $OUT/NAME.png, console to
# $OUT/NAME.log; prints the console messages, fails when there are any.
browse() {
	profile=$(mktemp -d "${TMPDIR:-/tmp}/mcb-chromium.XXXXXX")
	timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking --disable-component-update \
		--disable-sync --user-data-dir="$profile" --enable-logging=stderr --v=0 \
		--hide-scrollbars --window-size=1200,1600 --screenshot="$OUT/$1.png" \
		"file://$2" > "$OUT/$1.log" 2>&1
	code=$?
	rm -rf "$profile"
	if [ $code -ne 0 ]; then
		echo "chromium exited with $code"
		return 1
	fi
	if grep -E ':CONSOLE[:(]|Uncaught|Content Security Policy|Page load failed' "$OUT/$1.log"; then
		return 1
	fi
	if [ ! -s "$OUT/$1.png" ]; then
		echo "no screenshot"
		return 1
	fi
	return 0
}

if [ ! -x "$CHROMIUM" ]; then
	skip "browser: $CHROMIUM is missing (make deps installs chromium)"
else
	bad=$OUT/bad-page.html
	cat > "$bad" <<'EOF'
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'">
<title>must fail</title></head><body><p style="color:red">x</p>
<script>undefined_function()</script><img alt="" src="https://example.invalid/x.png"></body></html>
EOF
	if browse bad-page "$bad" > "$OUT/bad-page.why"; then
		fail "browser: a page with a script and CSP violations was not caught"
	else
		pass "browser: a bad page is caught"
	fi
	for p in $pages; do
		name=${p%%:*}
		file=${p#*:}
		if why=$(browse "$name" "$file"); then
			pass "browser $name ($OUT/$name.png)"
		else
			fail "browser $name: $why"
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
