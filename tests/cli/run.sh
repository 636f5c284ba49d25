#!/bin/sh
# Golden CLI tests.  Usage: sh tests/cli/run.sh path/to/mcbuild [case...]
#
# Each case is a directory tests/cli/cases/NAME holding a workspace (any
# files), a `script` (one shell command per line; blank lines and lines
# starting with '#' are skipped) and `expected`, the transcript:
#
#   $ command
#   <its stdout>
#   stderr: <each line of its stderr>
#   exit: N            (only when N != 0)
#
# The case directory is copied to a scratch directory first; in copies of
# *.yaml files @SHARED@ becomes the ../shared folder (MCB_SHARED).  In the
# transcript the scratch directory reads $WS and the shared folder $SHARED.
# Commands run with `mcbuild` on PATH (the binary under test), TERM=dumb, and
# MCB_TOP set to the repository.
# MCB_REGEN=1 rewrites `expected` from the actual transcript instead.
# A case whose first script line is `# needs-model` is skipped, loudly, when
# ../shared/models/stories260K.bin is missing.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
top=$(pwd)
shared=${MCB_SHARED:-$top/../shared}
shared=$(cd "$shared" 2>/dev/null && pwd || echo "$shared")
scratch=$top/build/tests/cli
mkdir -p "$scratch/bin"
ln -sf "$bin" "$scratch/bin/mcbuild"
if [ $# -gt 0 ]; then cases=$*; else cases=$(ls tests/cli/cases); fi
pass=0 fail=0 skip=0
for name in $cases; do
	case_dir=$top/tests/cli/cases/$name
	if head -n 1 "$case_dir/script" | grep -q '^# needs-model' &&
	   [ ! -r "$shared/models/stories260K.bin" ]; then
		echo "SKIPPED cli/$name: $shared/models/stories260K.bin is missing"
		skip=$((skip + 1))
		continue
	fi
	ws=$scratch/$name
	rm -rf "$ws"
	mkdir -p "$ws"
	(cd "$case_dir" && tar cf - --exclude=script --exclude=expected .) | (cd "$ws" && tar xf -)
	find "$ws" -name '*.yaml' -exec sed -i "s#@SHARED@#$shared#g" {} +
	actual=$scratch/$name.actual
	: > "$actual"
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in ''|'#'*) continue ;; esac
		printf '$ %s\n' "$line" >> "$actual"
		(cd "$ws" && PATH="$scratch/bin:$PATH" TERM=dumb MCB_SHARED="$shared" MCB_TOP="$top" \
			sh -c "$line" > "$scratch/out" 2> "$scratch/err")
		code=$?
		cat "$scratch/out" >> "$actual"
		sed 's/^/stderr: /' "$scratch/err" >> "$actual"
		[ $code -ne 0 ] && echo "exit: $code" >> "$actual"
	done < "$case_dir/script"
	sed -i -e "s#$ws#\$WS#g" -e "s#$shared#\$SHARED#g" "$actual"
	if [ "${MCB_REGEN:-}" = 1 ]; then
		cp "$actual" "$case_dir/expected"
		echo "regenerated cli/$name"
		pass=$((pass + 1))
	elif diff -u "$case_dir/expected" "$actual" > "$scratch/$name.diff" 2>&1; then
		pass=$((pass + 1))
	else
		echo "FAIL cli/$name:"
		cat "$scratch/$name.diff"
		fail=$((fail + 1))
	fi
done
echo "golden CLI tests: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
