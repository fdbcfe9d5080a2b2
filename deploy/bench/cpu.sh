#!/usr/bin/env bash
# cpu.sh: smtpsvc's CPU per message while it accepts and relays mail to a
# discard sink, measured from /proc (utime + stime of the smtpsvc process,
# from its start until the sink has every message), on loopback only.
#
#   deploy/bench/cpu.sh [SMTPSVC-BINARY]
#
# Without an argument it builds smtpsvc from this checkout; give the path
# of another build to compare two versions run by run (interleave them: the
# host's speed drifts). The load is cmd/smtpload, SESSIONS parallel
# sessions sending COUNT messages of SIZE bytes; PER_SESSION messages per
# connection (0 = one connection per session for the whole run, 1 = a new
# connection per message, as smtp-source does in compare.sh). One line per
# run:
#
#   utime 126 stime 285 ticks; 0.342 ms/msg; 3063 msgs/s accepted
#
# Environment: COUNT (12000), SESSIONS (20), SIZE (4096), PER_SESSION (0),
# RUNS (1), PORT (2701; the sink uses PORT-1, the status port PORT+1).
set -u
cd "$(dirname "$0")/../.." || exit 1
COUNT=${COUNT:-12000} SESSIONS=${SESSIONS:-20} SIZE=${SIZE:-4096}
PER_SESSION=${PER_SESSION:-0} RUNS=${RUNS:-1} PORT=${PORT:-2701}
WORK=$(mktemp -d /tmp/ds2mb-cpu.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
go build -o "$WORK/bin/" ./cmd/smtpload ./deploy/bench/mkmetabase || exit 1
SVC=${1:-}
if [ -z "$SVC" ]; then
	go build -o "$WORK/bin/" ./cmd/smtpsvc || exit 1
	SVC=$WORK/bin/smtpsvc
fi
tick=$(getconf CLK_TCK)
for run in $(seq 1 "$RUNS"); do
	d=$WORK/run$run
	mkdir -p "$d"
	"$WORK/bin/smtpload" -sink "127.0.0.1:$((PORT - 1))" -expect "$COUNT" -sink-timeout 300s >"$d/sink.out" 2>&1 &
	sink=$!
	"$WORK/bin/mkmetabase" -port "$PORT" -smarthost "[127.0.0.1]" -remote-port "$((PORT - 1))" -out "$d/MetaBase.xml" >/dev/null || exit 1
	"$SVC" --metabase "$d/MetaBase.xml" --status-addr "127.0.0.1:$((PORT + 1))" --dns-server none >"$d/svc.out" 2>&1 &
	svc=$!
	for _ in $(seq 1 100); do
		grep -q 'metabase applied' "$d/svc.out" && break
		sleep 0.05
	done
	if ! "$WORK/bin/smtpload" -addr "127.0.0.1:$PORT" -sessions "$SESSIONS" -size "$SIZE" -count "$COUNT" -per-session "$PER_SESSION" >"$d/load.out" 2>&1; then
		echo "load failed: $(tail -1 "$d/load.out")" >&2
		exit 1
	fi
	if ! wait "$sink"; then
		echo "the sink did not get $COUNT messages: $(tail -1 "$d/sink.out")" >&2
		exit 1
	fi
	read -r -a st <"/proc/$svc/stat"
	kill "$svc"
	wait "$svc" 2>/dev/null
	rate=$(grep -o '= [0-9]* msgs/s' "$d/load.out" | tr -d '=')
	awk -v u="${st[13]}" -v s="${st[14]}" -v n="$COUNT" -v hz="$tick" -v r="$rate" \
		'BEGIN { printf "utime %d stime %d ticks; %.3f ms/msg;%s accepted\n", u, s, (u + s) * 1000 / hz / n, r }'
done
