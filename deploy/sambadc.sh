#!/usr/bin/env bash
# sambadc.sh: run a throw-away Samba AD DC (a fresh provision in a network
# namespace, the Exchange schema and the sample organisation) in the
# foreground until Ctrl-C, then tear it down. Needs root; installs Samba
# first when it is missing. Flags are those of deploy/cmd/sambadc.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/ensure-deps.sh
exec go run ./deploy/cmd/sambadc "$@"
