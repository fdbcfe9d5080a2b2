#!/usr/bin/env bash
# demo.sh: the quick start (`make demo`). Starts every part of the system in
# the background from bin/ (built by `make build`), waits until each is
# ready, and stops them all on Ctrl-C or when one of them exits.
#
# To add a daemon: one `start NAME COMMAND…` line (its output goes to
# $DEMO/NAME.log and, prefixed, to the terminal) and, if others depend on it,
# a `wait_file` line after it.
#
# Ports: the directory 3890, the virtual servers 2525 and 2526, the status
# of smtpsvc 8025 and of ds2mb 8026. A port that is taken is replaced by
# the next free one above it (the virtual servers' bindings are then moved
# in the directory with mbctl dir set), and the tour prints what is used.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO="${DEMO_DIR:-.demo}" # everything the demo writes
BIN="${BIN_DIR:-bin}"     # the binaries (make build)
mkdir -p "$DEMO"

picked=" "
# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# pick_port VAR PREFERRED WHAT: VAR=PREFERRED when it is free, else the next
# free port above it (none picked twice).
pick_port() {
	local var=$1 want=$2 what=$3 p=$2 i
	for ((i = 0; i < 200; i++, p++)); do
		if [[ $picked != *" $p "* ]] && ! port_in_use "$p"; then
			[ "$p" = "$want" ] || echo "demo: port $want ($what) is taken; using $p" >&2
			picked+="$p "
			printf -v "$var" '%s' "$p"
			return
		fi
	done
	echo "demo: no free port for $what in $want-$p" >&2
	exit 1
}
pick_port LDAP_PORT "${LDAP_PORT:-3890}" "the directory"
pick_port SMTP1_PORT "${SMTP1_PORT:-2525}" "virtual server 1"
pick_port SMTP2_PORT "${SMTP2_PORT:-2526}" "virtual server 2"
pick_port WORKER_PORT "${WORKER_PORT:-8025}" "smtpsvc status"
pick_port REPL_PORT "${REPL_PORT:-8026}" "ds2mb status"
LDAP_URL="ldap://127.0.0.1:${LDAP_PORT}/"

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
start directory "$BIN/localdir" -port "$LDAP_PORT" -dir "$DEMO/ldap" -fresh -ready "$DEMO/ldap.ready"
wait_file "$DEMO/ldap.ready" 120

# 2. The replicator: SERVER01's SMTP configuration, one way, into a MetaBase.xml.
MB_DIR="$DEMO/metabase"
STATUS_ADDR="127.0.0.1:$WORKER_PORT"
REPL_STATUS_ADDR="127.0.0.1:$REPL_PORT"
ADMIN_DN="cn=admin,dc=example,dc=com"
VS1_DN="cn=1,cn=SMTP,cn=Protocols,cn=SERVER01,cn=Servers,cn=First Administrative Group,cn=Administrative Groups,cn=Example,cn=Microsoft Exchange,cn=Services,cn=Configuration,dc=example,dc=com"
rm -rf "$MB_DIR" "$DEMO/smtpsvc-status.json"
mkdir -p "$MB_DIR"
(umask 077 && printf 'secret\n' >"$DEMO/bind-password")
export DS2MB_LDAP_URL=$LDAP_URL DS2MB_BIND_DN=$ADMIN_DN DS2MB_BIND_PASSWORD_FILE=$DEMO/bind-password
export DS2MB_BASE_DN=cn=Configuration,dc=example,dc=com DS2MB_SERVER=SERVER01
# The sample binds the virtual servers to 2525 and 2526: move what is taken.
[ "$SMTP1_PORT" = 2525 ] || "$BIN/mbctl" dir set --vs 1 ServerBindings "127.0.0.1:$SMTP1_PORT:" >/dev/null
[ "$SMTP2_PORT" = 2526 ] || "$BIN/mbctl" dir set --vs 2 ServerBindings "127.0.0.1:$SMTP2_PORT:" >/dev/null
start replicator "$BIN/ds2mb" --ldap-url "$LDAP_URL" --bind-dn "$ADMIN_DN" --bind-password-file "$DEMO/bind-password" \
	--base-dn "cn=Configuration,dc=example,dc=com" --server SERVER01 --metabase "$MB_DIR/MetaBase.xml" --status-addr "$REPL_STATUS_ADDR"
wait_file "$MB_DIR/MetaBase.xml" 60

# 3. The SMTP worker on that file (SERVER01's virtual servers).
start smtpsvc "$BIN/smtpsvc" --metabase "$MB_DIR/MetaBase.xml" --status-addr "$STATUS_ADDR" \
	--status-file "$DEMO/smtpsvc-status.json" --dns-server none
wait_file "$DEMO/smtpsvc-status.json" 60

cat <<EOF

demo: the whole spine runs: directory $LDAP_URL → ds2mb → $MB_DIR/MetaBase.xml → smtpsvc
demo: SMTP virtual servers of SERVER01: 127.0.0.1:$SMTP1_PORT (1) and 127.0.0.1:$SMTP2_PORT (2)
demo: worker status: curl -s http://$STATUS_ADDR/status   (also /healthz, /metrics; file $DEMO/smtpsvc-status.json)

demo: the tour (paste as is, in another terminal, from $(pwd)):

export DS2MB_METABASE=$MB_DIR/MetaBase.xml DS2MB_WORKER=$STATUS_ADDR DS2MB_REPLICATOR=$REPL_STATUS_ADDR
export DS2MB_LDAP_URL=$LDAP_URL DS2MB_BIND_DN=$ADMIN_DN DS2MB_BIND_PASSWORD_FILE=$DEMO/bind-password
export DS2MB_BASE_DN=cn=Configuration,dc=example,dc=com DS2MB_SERVER=SERVER01
$BIN/mbctl status                                   # each part and the version it runs
$BIN/mbctl dir set --vs 1 MaxRecipients 0           # refused before anything is written: out of range
$BIN/mbctl dir set --vs 1 MaxRecipients 250         # applied: the directory changes...
$BIN/mbctl status                                   # ...ds2mb writes a new version, smtpsvc serves it
$BIN/mbctl explain /LM/SmtpSvc/1 MaxRecipients      # which DN and attribute it came from
$BIN/mbctl diff v1 v2; $BIN/mbctl history            # what changed in MetaBase.xml

# the same edit with plain ldapmodify: virtual server 1's host name
ldapmodify -x -H $LDAP_URL -D $ADMIN_DN -w secret <<'LDIF'
dn: $VS1_DN
changetype: modify
replace: msExchSmtpFullyQualifiedDomainName
msExchSmtpFullyQualifiedDomainName: mail.example.com
LDIF
exec 3<>/dev/tcp/127.0.0.1/$SMTP1_PORT; head -1 <&3; exec 3<&-   # the banner: 220 mail.example.com … ready at …

# a disclaimer for mail from example.com, local to this server
$BIN/mbctl bindings add --instance 1 --event OnArrival --class ds2mb.Disclaimer --name Legal \\
      --rule "mail from=*@example.com" --sink "Text=-- sent through the ds2mb demo"
$BIN/mbctl bindings list

# send a message and find it delivered in the local store
printf 'Subject: hello\r\n\r\nfirst message\r\n' | curl -s smtp://127.0.0.1:$SMTP1_PORT \\
      --mail-from alice@example.com --mail-rcpt bob@example.com -T -
cat "$MB_DIR/Mailroot/vsi 1/Mailbox/example.com/bob/new/"*

EOF

echo "demo: running; press Ctrl-C to stop"
# Run until Ctrl-C or until any part exits.
wait -n "${pids[@]}" || true
for i in "${!pids[@]}"; do
	kill -0 "${pids[i]}" 2>/dev/null || echo "demo: ${names[i]} has stopped (see $DEMO/${names[i]}.log); stopping the rest" >&2
done
