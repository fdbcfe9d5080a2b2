#!/usr/bin/env bash
# fuzz-all.sh [FUZZTIME]: run every native Go fuzz target of the repository
# (every "func FuzzXxx(f *testing.F)" in a _test.go file, found afresh each run)
# for FUZZTIME each (default 3s; env FUZZTIME or the first argument).
# `make fuzz` runs it (FUZZTIME=5m for longer); `make test` runs only the seed
# corpora, deterministically. A failing input lands in testdata/fuzz/: commit
# it with the fix, and every later `make test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${1:-${FUZZTIME:-3s}}"
GO="${GO:-go}"

targets=$(grep -rEo --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata --exclude-dir=vendor \
	'^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's|^\./||; s|:func (Fuzz[A-Za-z0-9_]*)\($| \1|' | sort || true)
if [ -z "$targets" ]; then
	echo "fuzz-all: no fuzz targets found"
	exit 0
fi
n=0
while read -r file name; do
	pkg="./$(dirname "$file")"
	echo "fuzz-all: $pkg $name for $FUZZTIME"
	"$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg"
	n=$((n + 1))
done <<<"$targets"
echo "fuzz-all: $n fuzz targets passed"
