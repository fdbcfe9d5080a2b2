#!/usr/bin/env bash
# demo.sh: the quick start (`make demo`). Starts every part of the system in
# the background from bin/ (built by `make build`), waits until each is
# ready, and stops them all on Ctrl-C or when one of them exits.
#
# To add a daemon: one `start NAME COMMAND…` line (its output goes to
# $DEMO/NAME.log and, prefixed, to the terminal) and, if others depend on it,
# a `wait_file` or `wait_port` line after it.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO="${DEMO_DIR:-.demo}"      # everything the demo writes
LDAP_PORT="${LDAP_PORT:-3890}" # the local directory's port
LDAP_URL="ldap://127.0.0.1:${LDAP_PORT}/"
mkdir -p "$DEMO"

pids=()
names=()
cleanup() {
	trap - EXIT INT TERM
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		if kill -0 "${pids[i]}" 2>/dev/null; then
			echo "demo: stopping ${names[i]}"
			kill -TERM "${pids[i]}" 2>/dev/null || true
			wait "${pids[i]}" 2>/dev/null || true
		fi
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND…: run COMMAND in the background, its output in $DEMO/NAME.log
# and on the terminal with a "[NAME] " prefix.
start() {
	local name=$1
	shift
	"$@" > >(tee "$DEMO/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
	names+=("$name")
}

# wait_file FILE SECONDS: wait until FILE exists, or fail.
wait_file() {
	local file=$1 deadline=$((SECONDS + $2))
	until [ -e "$file" ]; do
		if [ $SECONDS -ge $deadline ]; then
			echo "demo: gave up waiting for $file" >&2
			exit 1
		fi
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			echo "demo: ${names[-1]} exited; see $DEMO/${names[-1]}.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# 1. The directory: a private slapd with the sample organisation, fresh each run.
rm -f "$DEMO/ldap.ready"
start directory bin/localdir -port "$LDAP_PORT" -dir "$DEMO/ldap" -fresh -ready "$DEMO/ldap.ready"
wait_file "$DEMO/ldap.ready" 120

# 2. The replicator and 3. the SMTP worker start here once they exist, e.g.
#   start replicator bin/ds2mb -url "$LDAP_URL" -server SERVER01 -metabase "$DEMO/MetaBase.xml" …
#   start smtpsvc bin/smtpsvc -metabase "$DEMO/MetaBase.xml" …
: "$LDAP_URL"

echo "demo: running; press Ctrl-C to stop"
# Run until Ctrl-C or until any part exits.
wait -n "${pids[@]}" || true
for i in "${!pids[@]}"; do
	kill -0 "${pids[i]}" 2>/dev/null || echo "demo: ${names[i]} has stopped (see $DEMO/${names[i]}.log); stopping the rest" >&2
done
