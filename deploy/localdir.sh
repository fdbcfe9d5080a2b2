#!/usr/bin/env bash
# localdir.sh [flags]: run the local directory (private slapd with the Exchange
# schema and the sample organisation) in the foreground until Ctrl-C.
# Flags are those of deploy/cmd/localdir, e.g. -port 3890 -dir .demo/ldap -fresh.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/ensure-deps.sh
if [ -x bin/localdir ]; then
	exec bin/localdir "$@"
fi
exec go run ./deploy/cmd/localdir "$@"
