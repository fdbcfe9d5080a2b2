#!/usr/bin/env bash
# ensure-deps.sh: make sure the system tools the tests and the demo need are
# installed: slapd and slapadd (Debian package slapd), ldapadd/ldapsearch
# (ldap-utils) and, for the Active Directory tests, a Samba AD DC (samba,
# samba-tool, ldbadd: packages samba, samba-ad-dc, samba-ad-provision,
# ldb-tools). When one is missing it says so and installs the packages with
# apt-get, non-interactively (as root, or through sudo). Samba's own system
# services are masked: the tests run private DCs in network namespaces.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
for tool in slapd slapadd ldapadd ldapsearch samba samba-tool ldbadd; do
	have "$tool" || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

packages=(slapd ldap-utils samba samba-ad-dc samba-ad-provision ldb-tools)
echo "ensure-deps: ${missing[*]} not found; installing the Debian packages (apt-get install -y ${packages[*]})" >&2
if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-deps: no apt-get here; install OpenLDAP's slapd and client tools with your package manager" >&2
	exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "ensure-deps: not root and no sudo: run as root: apt-get install -y ${packages[*]}" >&2
		exit 1
	fi
fi

# In a container without an init system the package's attempt to start the
# system slapd would fail the install; a policy-rc.d that answers 101 forbids
# that start. Only one we create is removed again. A system slapd that does
# start (on port 389) is harmless: ds2mb runs its own on other ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ] && [ ! -d /run/systemd/system ]; then
	if printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null && "${SUDO[@]}" chmod 755 "$policy"; then
		created_policy=1
	fi
fi
cleanup() { if [ "$created_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

# apt-get update's lists lock ignores DPkg::Lock::Timeout: retry it.
for attempt in 1 2 3 4 5; do
	if "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -q; then
		break
	fi
	[ "$attempt" = 5 ] && { echo "ensure-deps: apt-get update failed 5 times" >&2; exit 1; }
	echo "ensure-deps: apt-get update failed; retrying in $((attempt * 3)) s" >&2
	sleep $((attempt * 3))
done
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends "${packages[@]}"
if [ -d /run/systemd/system ]; then
	"${SUDO[@]}" systemctl mask --now smbd nmbd samba-ad-dc >/dev/null 2>&1 || true
fi

for tool in slapd slapadd ldapadd samba samba-tool ldbadd; do
	if ! have "$tool"; then
		echo "ensure-deps: $tool still missing after the install" >&2
		exit 1
	fi
done
echo "ensure-deps: ${packages[*]} installed" >&2
