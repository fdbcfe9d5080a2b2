#!/usr/bin/env bash
# compare.sh: accepted messages per second of Postfix and of our SMTP worker
# (smtpsvc) on this machine, same client, same rounds: Postfix's smtp-source
# with 20 parallel sessions and 4 KB messages against each server, with a
# fresh spool folder (and, for Postfix, a fresh queue) for every run. Both
# servers make mail durable before the 250 (Postfix fsyncs its queue file,
# smtpsvc fsyncs the message file and its folder).
#
# Postfix runs as a private instance (its own config and queue folders under
# the work folder, listening on 127.0.0.1 only) in two modes: "discard"
# (mail is queued and then delivered by the discard transport: the normal
# pipeline without a mailbox) and "hold" (mail is accepted into the hold
# queue and stays there, like smtpsvc's spool before delivery exists).
#
# Then: one-session latency MAIL→final 250 (p50/p99) of both servers with
# cmd/smtpload, and smtpsvc's resident memory with 10,000 idle sessions.
#
# Usage: deploy/bench/compare.sh            (as root: installs postfix if missing)
# Environment: ROUNDS (3), MESSAGES per run (4000), SESSIONS (20), SIZE (4096),
#   IDLE (10000), LATENCY_COUNT (2000), WORK (a temporary folder), SKIP_POSTFIX=1.
set -uo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-4000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
IDLE=${IDLE:-10000}
LATENCY_COUNT=${LATENCY_COUNT:-2000}
WORK=${WORK:-$(mktemp -d /tmp/ds2mb-bench.XXXXXX)}
# Postfix daemons run as the postfix user and must reach their folders inside.
chmod 755 "$WORK"
PORT_OURS=${PORT_OURS:-2725}
PORT_POSTFIX=${PORT_POSTFIX:-2825}
STATUS_PORT=${STATUS_PORT:-8726}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
mkdir -p "$WORK/bin"

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

say "work folder: $WORK"
go build -o "$WORK/bin/smtpsvc" ./cmd/smtpsvc || exit 1
go build -o "$WORK/bin/smtpload" ./cmd/smtpload || exit 1
go build -o "$WORK/bin/mkmetabase" ./deploy/bench/mkmetabase || exit 1

# --- Postfix --------------------------------------------------------------
postfix_ok=1
postfix_why=""
if [ -n "${SKIP_POSTFIX:-}" ]; then
	postfix_ok=0
	postfix_why="SKIP_POSTFIX set"
elif ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
	say "installing postfix (for smtp-source and the comparison)…"
	if ! (export DEBIAN_FRONTEND=noninteractive
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		apt-get install -y -q --no-install-recommends postfix >"$WORK/apt.log" 2>&1); then
		postfix_ok=0
		postfix_why="apt-get install postfix failed (see $WORK/apt.log)"
	fi
fi
# The package may start a system Postfix on port 25: stop it.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then
	say "stopping the system postfix the package started"
	postfix stop >/dev/null 2>&1 || true
fi

# postfix_instance DIR MODE: a private Postfix instance in DIR, mode discard or hold.
postfix_instance() {
	local d=$1 mode=$2
	mkdir -p "$d/etc" "$d/spool" "$d/data"
	cat >"$d/etc/main.cf" <<-EOF
		compatibility_level = 3.6
		queue_directory = $d/spool
		data_directory = $d/data
		command_directory = /usr/sbin
		daemon_directory = /usr/lib/postfix/sbin
		meta_directory = /etc/postfix
		shlib_directory = /usr/lib/postfix
		mail_owner = postfix
		setgid_group = postdrop
		myhostname = postfix.bench.test
		mydomain = bench.test
		mydestination = example.com
		inet_interfaces = 127.0.0.1
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		maillog_file = $d/maillog
		maillog_file_prefixes = $d
		local_transport = discard:
		default_transport = discard:
		relay_transport = discard:
		local_recipient_maps =
		smtpd_banner = \$myhostname ESMTP
		biff = no
		smtpd_client_connection_count_limit = 0
		smtpd_client_connection_rate_limit = 0
		default_process_limit = 200
		in_flow_delay = 0
		alias_maps =
		alias_database =
	EOF
	if [ "$mode" = hold ]; then
		echo "smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject" >>"$d/etc/main.cf"
	fi
	# The system master.cf, without chroot, smtpd on our port only.
	sed -E -e 's/^(\S+\s+\S+\s+\S+\s+\S+\s+)y(\s)/\1n\2/' \
		-e "s/^smtp(\s+)inet/127.0.0.1:$PORT_POSTFIX\1inet/" /etc/postfix/master.cf >"$d/etc/master.cf"
	postfix -c "$d/etc" set-permissions >/dev/null 2>&1 || true
	chown -R postfix "$d/data"
	postfix -c "$d/etc" start >"$d/start.log" 2>&1
}

postfix_stop() {
	postfix -c "$1/etc" stop >/dev/null 2>&1 || true
	sleep 1
}

wait_port() {
	local port=$1 i
	for i in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# --- our worker ------------------------------------------------------------
ours_pid=""
ours_start() {
	local d=$1
	mkdir -p "$d"
	"$WORK/bin/mkmetabase" -port "$PORT_OURS" -out "$d/MetaBase.xml" || return 1
	"$WORK/bin/smtpsvc" --metabase "$d/MetaBase.xml" --status-addr "127.0.0.1:$STATUS_PORT" --dns-server none >"$d/smtpsvc.log" 2>&1 &
	ours_pid=$!
	wait_port "$PORT_OURS"
}
ours_stop() {
	[ -n "$ours_pid" ] && kill -TERM "$ours_pid" 2>/dev/null && wait "$ours_pid" 2>/dev/null
	ours_pid=""
}
trap 'ours_stop; for d in "$WORK"/pf-*; do [ -d "$d/etc" ] && postfix_stop "$d"; done' EXIT

# source PORT: run smtp-source, print messages/s.
source_run() {
	local port=$1 t0 t1
	t0=$(now)
	if ! smtp-source -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" -f load@example.net -t user@example.com "127.0.0.1:$port" >"$WORK/source.out" 2>&1; then
		echo "failed: $(tail -1 "$WORK/source.out")"
		return 1
	fi
	t1=$(now)
	rate "$MESSAGES" "$t0" "$t1"
}

declare -A results
have_source=0
command -v smtp-source >/dev/null && have_source=1
for r in $(seq 1 "$ROUNDS"); do
	if [ "$have_source" = 1 ]; then
		ours_start "$WORK/ours-$r" || { say "smtpsvc did not start: $(tail -3 "$WORK/ours-$r/smtpsvc.log")"; exit 1; }
		v=$(source_run "$PORT_OURS")
		n=$(ls "$WORK/ours-$r/Mailroot/vsi 1/Queue" | wc -l)
		ours_stop
		say "round $r smtpsvc (smtp-source):        $v msgs/s ($n files spooled)"
		results[ours]+="$v "
		if [ "$postfix_ok" = 1 ]; then
			for mode in discard hold; do
				d="$WORK/pf-$mode-$r"
				if ! postfix_instance "$d" "$mode" || ! wait_port "$PORT_POSTFIX"; then
					postfix_ok=0
					postfix_why="the private Postfix instance did not start: $(tail -3 "$d/start.log" "$d/maillog" 2>/dev/null | tr '\n' ' ')"
					postfix_stop "$d"
					break
				fi
				v=$(source_run "$PORT_POSTFIX")
				postfix_stop "$d"
				say "round $r postfix $mode (smtp-source): $v msgs/s"
				results[postfix-$mode]+="$v "
			done
		fi
	fi
	# And our own load command against our worker.
	ours_start "$WORK/ours-load-$r" || exit 1
	line=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -sessions "$SESSIONS" -size "$SIZE" -count "$MESSAGES")
	ours_stop
	say "round $r smtpsvc (smtpload):           $line"
	results[ours-smtpload]+="$(echo "$line" | sed -E 's/.*= ([0-9]+) msgs\/s.*/\1/') "
done

# One-session latency, MAIL → final 250, 4 KB.
ours_start "$WORK/ours-latency" || exit 1
lat_ours=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -sessions 1 -size "$SIZE" -count "$LATENCY_COUNT")
ours_stop
lat_pf="not run ($postfix_why)"
if [ "$postfix_ok" = 1 ]; then
	d="$WORK/pf-latency"
	postfix_instance "$d" discard && wait_port "$PORT_POSTFIX" &&
		lat_pf=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_POSTFIX" -sessions 1 -size "$SIZE" -count "$LATENCY_COUNT")
	postfix_stop "$d"
fi

# Resident memory with IDLE idle sessions.
ulimit -n $((IDLE * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ours_start "$WORK/ours-idle" || exit 1
idle_out=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -idle "$IDLE" -hold 10s -pid "$ours_pid" 2>&1)
ours_stop

echo
echo "== results ($(nproc) cores, $ROUNDS rounds, $SESSIONS sessions, $SIZE-byte messages, $MESSAGES per run, fresh spool each run)"
printf 'smtpsvc, smtp-source:         %s msgs/s\n' "${results[ours]:-not run (no smtp-source)}"
printf 'smtpsvc, smtpload:            %s msgs/s\n' "${results[ours-smtpload]:-}"
if [ "$postfix_ok" = 1 ] || [ -n "${results[postfix-discard]:-}" ]; then
	printf 'postfix 3.7 (discard):        %s msgs/s\n' "${results[postfix-discard]:-}"
	printf 'postfix 3.7 (hold queue):     %s msgs/s\n' "${results[postfix-hold]:-}"
fi
[ "$postfix_ok" = 1 ] || echo "postfix: $postfix_why"
echo "one-session latency, smtpsvc: $lat_ours"
echo "one-session latency, postfix: $lat_pf"
echo "idle sessions, smtpsvc:"
echo "$idle_out" | sed 's/^/  /'
