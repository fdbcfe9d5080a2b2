#!/usr/bin/env bash
# compare.sh: our SMTP worker (smtpsvc) against Postfix on this machine, same
# client, same rounds: Postfix's smtp-source with SESSIONS parallel sessions
# and SIZE-byte messages against each server, with a fresh spool folder (and,
# for Postfix, a fresh queue) for every run. Both servers make mail durable
# before the 250 (Postfix fsyncs its queue file, smtpsvc fsyncs the message
# file and its folder).
#
# Each round runs two pairs:
#
#   accept only  smtpsvc --no-delivery (mail is spooled and stays there)
#                against Postfix "hold" (mail is accepted into the hold
#                queue and stays there): accepted msgs/s.
#   full         smtpsvc with delivery running, relaying example.com to a
#                discard sink (`smtpload -sink`, a separate process) as its
#                smart host, against Postfix "discard" (normal queueing, then
#                delivery by the discard transport). For each: accepted
#                msgs/s (the smtp-source run), then a bounded wait (WAIT s)
#                until every acknowledged message is delivered (smtpsvc: the
#                sink counted MESSAGES and "Mailroot/vsi 1/Queue" holds no
#                .eml; Postfix: MESSAGES "status=sent" lines in its maillog
#                and an empty queue), printed as "delivered N of M
#                acknowledged" with the time from the first connection until
#                all were delivered; and the server's CPU per message:
#                utime+stime+cutime+cstime from /proc of the server process
#                (smtpsvc) or of Postfix's master and all its live
#                descendants (smtpd, qmgr, cleanup, trivial-rewrite,
#                discard, …), read after start and after all were
#                delivered. The load generator and the sink are not counted
#                (the sink's own CPU is printed beside, for it shares the
#                cores with the server).
#
# and, against smtpsvc --no-delivery, cmd/smtpload with the same shape.
#
# Postfix runs as a private instance (its own config and queue folders under
# the work folder, listening on 127.0.0.1 only, no chroot).
#
# Then: one-session latency MAIL→final 250 (p50/p99) of smtpsvc (spool only,
# and delivering) and of Postfix (discard) with cmd/smtpload, and smtpsvc's
# resident memory with IDLE idle sessions.
#
# Goals reported (issue 7): full accepted msgs/s ≥ 2× Postfix full, server
# CPU ≤ 0.5 ms per message, every acknowledged message delivered.
#
# Usage: deploy/bench/compare.sh            (as root: installs postfix if missing)
# Environment:
#   ROUNDS (3)         rounds of every pair
#   MESSAGES (4000)    messages per run
#   SESSIONS (20)      parallel sessions of smtp-source and smtpload
#   SIZE (4096)        message size in bytes
#   WAIT (120)         seconds to wait for all messages to be delivered
#   IDLE (10000)       idle sessions for the RSS measurement (0 = skip)
#   LATENCY_COUNT (2000) messages of the one-session latency runs (0 = skip)
#   WORK               work folder (default: a new temporary folder)
#   PORT_OURS (2725), PORT_POSTFIX (2825), PORT_SINK (2626), STATUS_PORT (8726)
#   SKIP_POSTFIX=1     run smtpsvc only
set -uo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-4000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
WAIT=${WAIT:-120}
IDLE=${IDLE:-10000}
LATENCY_COUNT=${LATENCY_COUNT:-2000}
WORK=${WORK:-$(mktemp -d /tmp/ds2mb-bench.XXXXXX)}
# Postfix daemons run as the postfix user and must reach their folders inside.
chmod 755 "$WORK"
PORT_OURS=${PORT_OURS:-2725}
PORT_POSTFIX=${PORT_POSTFIX:-2825}
PORT_SINK=${PORT_SINK:-2626}
STATUS_PORT=${STATUS_PORT:-8726}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
mkdir -p "$WORK/bin"
TCK=$(getconf CLK_TCK)

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
# since T0 [T1]: seconds from T0 to T1 (default: now), two decimals.
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
# per_msg TICKS: CPU milliseconds per message.
per_msg() { awk -v t="$1" -v hz="$TCK" -v n="$MESSAGES" 'BEGIN { printf "%.3f", t * 1000 / hz / n }'; }

# cpu_ticks PID: utime+stime+cutime+cstime (clock ticks) of PID and of all
# its live descendants. A child that has exited and been waited for is in
# its parent's cutime/cstime; a live one is counted on its own, so nothing
# is counted twice.
cpu_ticks() {
	local root=$1 f line pid p c sum=0
	local -A parent ticks
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		pid=${line%% *}
		# shellcheck disable=SC2086 # split the fields after "(comm) "
		set -- ${line##*) }
		parent[$pid]=$2
		ticks[$pid]=$((${12} + ${13} + ${14} + ${15}))
	done
	local todo=("$root")
	while [ ${#todo[@]} -gt 0 ]; do
		p=${todo[0]}
		todo=("${todo[@]:1}")
		sum=$((sum + ${ticks[$p]:-0}))
		for c in "${!parent[@]}"; do
			[ "${parent[$c]}" = "$p" ] && todo+=("$c")
		done
	done
	echo "$sum"
}

say "work folder: $WORK"
go build -o "$WORK/bin/smtpsvc" ./cmd/smtpsvc || exit 1
go build -o "$WORK/bin/smtpload" ./cmd/smtpload || exit 1
go build -o "$WORK/bin/mkmetabase" ./deploy/bench/mkmetabase || exit 1

# --- Postfix --------------------------------------------------------------
postfix_ok=1
postfix_why=""
install_postfix() {
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get install -y -q --no-install-recommends postfix >>"$WORK/apt.log" 2>&1 && return 0
	apt-get update -q >>"$WORK/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends postfix >>"$WORK/apt.log" 2>&1
}
if [ -n "${SKIP_POSTFIX:-}" ]; then
	postfix_ok=0
	postfix_why="SKIP_POSTFIX set"
elif ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
	say "installing postfix (for smtp-source and the comparison)…"
	if ! (install_postfix); then
		postfix_ok=0
		postfix_why="apt-get install postfix failed (see $WORK/apt.log)"
	fi
fi
# The package may start a system Postfix on port 25: stop it.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then
	say "stopping the system postfix the package started"
	postfix stop >/dev/null 2>&1 || true
fi
postfix_version=$(postconf -d -h mail_version 2>/dev/null || echo "?")

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

# postfix_master DIR: the pid of the instance's master process.
postfix_master() { tr -d ' \n' <"$1/spool/pid/master.pid" 2>/dev/null; }

# postfix_sent DIR: recipients the instance has delivered (status=sent).
postfix_sent() { grep -c 'status=sent' "$1/maillog" 2>/dev/null || true; }

# postfix_queued DIR: files in the instance's queue (hold excepted).
postfix_queued() {
	find "$1/spool/maildrop" "$1/spool/incoming" "$1/spool/active" "$1/spool/deferred" -type f 2>/dev/null | wc -l
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
sink_pid=""
# ours_start DIR MODE: smtpsvc in DIR; MODE spool (--no-delivery, local
# domain example.com) or sink (delivery running, example.com relayed to the
# sink on PORT_SINK as smart host; the sink is started too).
ours_start() {
	local d=$1 mode=$2 extra=() mb=()
	mkdir -p "$d"
	if [ "$mode" = sink ]; then
		mb=(-smarthost "[127.0.0.1]" -remote-port "$PORT_SINK")
		"$WORK/bin/smtpload" -sink "127.0.0.1:$PORT_SINK" -expect "$MESSAGES" -sink-timeout "$((WAIT + 600))s" >"$d/sink.out" 2>&1 &
		sink_pid=$!
		wait_port "$PORT_SINK" || return 1
	else
		extra=(--no-delivery)
	fi
	"$WORK/bin/mkmetabase" -port "$PORT_OURS" "${mb[@]}" -out "$d/MetaBase.xml" || return 1
	"$WORK/bin/smtpsvc" --metabase "$d/MetaBase.xml" --status-addr "127.0.0.1:$STATUS_PORT" --dns-server none "${extra[@]}" >"$d/smtpsvc.log" 2>&1 &
	ours_pid=$!
	wait_port "$PORT_OURS"
}
ours_stop() {
	[ -n "$ours_pid" ] && kill -TERM "$ours_pid" 2>/dev/null && wait "$ours_pid" 2>/dev/null
	ours_pid=""
	sink_stop
}
sink_stop() {
	[ -n "$sink_pid" ] && kill -TERM "$sink_pid" 2>/dev/null
	[ -n "$sink_pid" ] && wait "$sink_pid" 2>/dev/null
	sink_pid=""
}
trap 'ours_stop; for d in "$WORK"/pf-*; do [ -d "$d/etc" ] && postfix_stop "$d"; done' EXIT

# ours_queued DIR: messages still in smtpsvc's queue folder.
ours_queued() { find "$1/Mailroot/vsi 1/Queue" -name '*.eml' 2>/dev/null | wc -l; }

# source_run PORT: run smtp-source; sets v (messages/s, 0 when it failed),
# T0 and T1 (start and end of the run).
T0="" T1="" v=0
source_run() {
	local port=$1
	T0=$(now)
	if ! smtp-source -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" -f load@example.net -t user@example.com "127.0.0.1:$port" >"$WORK/source.out" 2>&1; then
		T1=$(now)
		v=0
		say "smtp-source failed: $(tail -1 "$WORK/source.out")"
		return 1
	fi
	T1=$(now)
	v=$(rate "$MESSAGES" "$T0" "$T1")
}

# full_run NAME DIR PORT ROOTPID DONE COUNT: one "full" run: smtp-source
# against PORT, then wait (at most WAIT s) until DONE DIR succeeds; COUNT
# DIR prints how many were delivered. Sets v (msgs/s), acked, delivered,
# took (s from the first connection until all were delivered, "-" when
# they were not within WAIT), cpu (ms per message of ROOTPID's tree).
full_run() {
	local name=$1 d=$2 port=$3 root=$4 done_cmd=$5 count_cmd=$6 c0 c1 deadline t after
	c0=$(cpu_ticks "$root")
	acked=0
	source_run "$port" && acked=$MESSAGES
	deadline=$(($(date +%s) + WAIT))
	took="-"
	after="not all delivered within ${WAIT}s"
	while [ "$(date +%s)" -le "$deadline" ]; do
		if $done_cmd "$d"; then
			t=$(now)
			took=$(since "$T0" "$t")
			after="all delivered ${took}s after the first connection, $(since "$T1" "$t")s after the last 250"
			break
		fi
		sleep 0.1
	done
	c1=$(cpu_ticks "$root")
	delivered=$($count_cmd "$d")
	cpu=$(per_msg $((c1 - c0)))
	say "round $r $name: $v msgs/s accepted; delivered $delivered of $acked acknowledged, $after; server CPU $cpu ms/msg"
}

# The done and count checks of full_run.
ours_done() { ! kill -0 "$sink_pid" 2>/dev/null && [ "$(ours_queued "$1")" -eq 0 ]; }
ours_count() {
	kill -0 "$sink_pid" 2>/dev/null && sink_stop
	sed -nE 's/.*: ([0-9]+) messages,.*/\1/p' "$1/sink.out" | tail -1
}
pf_done() { [ "$(postfix_sent "$1")" -ge "$MESSAGES" ] && [ "$(postfix_queued "$1")" -eq 0 ]; }
pf_count() { postfix_sent "$1"; }

# pf_start DIR MODE: start an instance, or give up on Postfix.
pf_start() {
	local d=$1
	if ! postfix_instance "$d" "$2" || ! wait_port "$PORT_POSTFIX"; then
		postfix_ok=0
		postfix_why="the private Postfix instance did not start: $(tail -3 "$d/start.log" "$d/maillog" 2>/dev/null | tr '\n' ' ')"
		postfix_stop "$d"
		return 1
	fi
}

# row NAME VALUE: add VALUE to a result row (values separated by spaces).
declare -A results
row() { results[$1]="${results[$1]:+${results[$1]} }$2"; }

have_source=0
command -v smtp-source >/dev/null && have_source=1
for r in $(seq 1 "$ROUNDS"); do
	if [ "$have_source" = 1 ]; then
		# Accept only.
		ours_start "$WORK/ours-spool-$r" spool || { say "smtpsvc did not start: $(tail -3 "$WORK/ours-spool-$r/smtpsvc.log")"; exit 1; }
		source_run "$PORT_OURS"
		n=$(ours_queued "$WORK/ours-spool-$r")
		ours_stop
		say "round $r smtpsvc --no-delivery (smtp-source): $v msgs/s ($n files spooled)"
		row ours-spool "$v"
		if [ "$postfix_ok" = 1 ] && pf_start "$WORK/pf-hold-$r" hold; then
			source_run "$PORT_POSTFIX"
			postfix_stop "$WORK/pf-hold-$r"
			say "round $r postfix hold (smtp-source): $v msgs/s"
			row pf-hold "$v"
		fi
		# Full: accepted, delivered, CPU.
		d="$WORK/ours-sink-$r"
		ours_start "$d" sink || { say "smtpsvc or the sink did not start: $(tail -3 "$d/smtpsvc.log" "$d/sink.out")"; exit 1; }
		full_run "smtpsvc delivering to the sink" "$d" "$PORT_OURS" "$ours_pid" ours_done ours_count
		ours_stop
		sink_ms=$(sed -nE 's/.*sink CPU ([0-9.]+)s.*/\1/p' "$d/sink.out" | tail -1 | awk -v n="$MESSAGES" '{ printf "%.3f", $1 * 1000 / n }')
		say "round $r the sink's own CPU: ${sink_ms:-?} ms/msg (shares the cores, not counted as smtpsvc's)"
		row sink-cpu "${sink_ms:-?}"
		row ours-full "$v"
		row ours-delivered "$delivered/$acked"
		row ours-took "$took"
		row ours-cpu "$cpu"
		if [ "$postfix_ok" = 1 ] && pf_start "$WORK/pf-discard-$r" discard; then
			d="$WORK/pf-discard-$r"
			full_run "postfix discard" "$d" "$PORT_POSTFIX" "$(postfix_master "$d")" pf_done pf_count
			postfix_stop "$d"
			row pf-full "$v"
			row pf-delivered "$delivered/$acked"
			row pf-took "$took"
			row pf-cpu "$cpu"
		fi
	fi
	# And our own load command against our worker.
	ours_start "$WORK/ours-load-$r" spool || exit 1
	line=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -sessions "$SESSIONS" -size "$SIZE" -count "$MESSAGES")
	ours_stop
	say "round $r smtpsvc --no-delivery (smtpload): $line"
	row ours-smtpload "$(echo "$line" | sed -E 's/.*= ([0-9]+) msgs\/s.*/\1/')"
done

# One-session latency, MAIL → final 250.
lat_ours="not run" lat_ours_sink="not run" lat_pf="not run"
if [ "$LATENCY_COUNT" -gt 0 ]; then
	ours_start "$WORK/ours-latency" spool || exit 1
	lat_ours=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -sessions 1 -size "$SIZE" -count "$LATENCY_COUNT")
	ours_stop
	ours_start "$WORK/ours-latency-sink" sink || exit 1
	lat_ours_sink=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -sessions 1 -size "$SIZE" -count "$LATENCY_COUNT")
	ours_stop
	lat_pf="not run ($postfix_why)"
	if [ "$postfix_ok" = 1 ]; then
		d="$WORK/pf-latency"
		postfix_instance "$d" discard && wait_port "$PORT_POSTFIX" &&
			lat_pf=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_POSTFIX" -sessions 1 -size "$SIZE" -count "$LATENCY_COUNT")
		postfix_stop "$d"
	fi
fi

# Resident memory with IDLE idle sessions, delivery running.
idle_out="not run"
if [ "$IDLE" -gt 0 ]; then
	ulimit -n $((IDLE * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	ours_start "$WORK/ours-idle" sink || exit 1
	idle_out=$("$WORK/bin/smtpload" -addr "127.0.0.1:$PORT_OURS" -idle "$IDLE" -hold 10s -pid "$ours_pid" 2>&1)
	ours_stop
fi

# goal WHAT CHECK A B: one line saying in how many rounds CHECK (an awk
# expression of a and b) held for the paired values of rows A and B.
goal() {
	awk -v what="$1" -v a="${results[$3]:-}" -v b="${results[$4]:-}" "BEGIN {
		n = split(a, as, \" \"); split(b, bs, \" \"); k = 0; list = \"\"
		for (i = 1; i <= n; i++) {
			a = as[i]; b = bs[i]; split(a, ap, \"/\"); split(b, bp, \"/\")
			ok = ($2); k += ok; list = list (i > 1 ? \", \" : \"\") (ok ? \"yes\" : \"no\")
		}
		if (n == 0) { printf \"%s: not measured\n\", what; exit }
		printf \"%s: %s (held in %d of %d rounds: %s)\n\", what, (k == n ? \"met\" : \"NOT met\"), k, n, list
	}"
}
# ratio A B: the per-round ratios of rows A and B.
ratio() {
	awk -v a="${results[$1]:-}" -v b="${results[$2]:-}" 'BEGIN {
		n = split(a, as, " "); split(b, bs, " ")
		for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (bs[i] > 0 ? sprintf("%.2f×", as[i] / bs[i]) : "-")
	}'
}

echo
echo "== results ($(nproc) cores, $ROUNDS rounds, $SESSIONS sessions, $SIZE-byte messages, $MESSAGES per run, fresh spool each run, $(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "-- accept only"
printf 'smtpsvc --no-delivery, smtp-source: %s msgs/s\n' "${results[ours-spool]:-not run (no smtp-source)}"
printf 'smtpsvc --no-delivery, smtpload:    %s msgs/s\n' "${results[ours-smtpload]:-}"
if [ -n "${results[pf-hold]:-}" ]; then
	printf 'postfix %s hold queue:            %s msgs/s\n' "$postfix_version" "${results[pf-hold]}"
	printf 'ratio smtpsvc / postfix:            %s\n' "$(ratio ours-spool pf-hold)"
fi
echo "-- full (delivery to a discard sink / discard transport)"
printf 'smtpsvc accepted:                   %s msgs/s\n' "${results[ours-full]:-not run}"
printf 'smtpsvc delivered/acknowledged:     %s\n' "${results[ours-delivered]:-}"
printf 'smtpsvc all delivered after:        %s s\n' "${results[ours-took]:-}"
printf 'smtpsvc server CPU:                 %s ms/msg\n' "${results[ours-cpu]:-}"
printf 'sink CPU (not counted above):       %s ms/msg\n' "${results[sink-cpu]:-}"
if [ -n "${results[pf-full]:-}" ]; then
	printf 'postfix %s discard accepted:      %s msgs/s\n' "$postfix_version" "${results[pf-full]}"
	printf 'postfix delivered/acknowledged:     %s\n' "${results[pf-delivered]}"
	printf 'postfix all delivered after:        %s s\n' "${results[pf-took]}"
	printf 'postfix server CPU:                 %s ms/msg\n' "${results[pf-cpu]}"
	printf 'ratio smtpsvc / postfix accepted:   %s\n' "$(ratio ours-full pf-full)"
fi
[ "$postfix_ok" = 1 ] || echo "postfix: $postfix_why"
echo "-- goals"
goal "accepted msgs/s ≥ 2× postfix full" 'a >= 2 * b' ours-full pf-full
goal "smtpsvc server CPU ≤ 0.5 ms/msg" 'a <= 0.5' ours-cpu ours-cpu
goal "smtpsvc delivered every acknowledged message" 'ap[1] == ap[2] && ap[2] > 0' ours-delivered ours-delivered
goal "postfix delivered every acknowledged message" 'ap[1] == ap[2] && ap[2] > 0' pf-delivered pf-delivered
echo "-- latency and memory"
echo "one-session latency, smtpsvc --no-delivery: $lat_ours"
echo "one-session latency, smtpsvc delivering:    $lat_ours_sink"
echo "one-session latency, postfix discard:       $lat_pf"
echo "idle sessions, smtpsvc (delivery running):"
echo "$idle_out" | sed 's/^/  /'
