# shellcheck shell=bash
# Shared helpers for scripts/*: sourced, not run.

# die prints a message and exits 1.
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# note prints a progress line.
note() { printf '==> %s\n' "$*" >&2; }

# need_go checks that Go is installed.
need_go() {
	command -v go >/dev/null 2>&1 ||
		die "Go is not installed (or not in PATH). onionlite needs Go 1.26: see https://go.dev/dl/"
}

# tor_present reports whether tor and tor-gencert are installed (Debian
# puts tor in /usr/sbin, which is not always in PATH).
tor_present() {
	local t
	t=$(command -v tor 2>/dev/null || true)
	[ -n "$t" ] || for p in /usr/sbin/tor /usr/bin/tor /usr/local/bin/tor; do
		[ -x "$p" ] && t=$p && break
	done
	[ -n "$t" ] || return 1
	command -v tor-gencert >/dev/null 2>&1 || [ -x "$(dirname "$t")/tor-gencert" ]
}

# ensure_tor installs Debian's tor package when tor is missing: as root
# with apt-get, or through sudo when it does not need a password. It
# explains what to do when it cannot.
ensure_tor() {
	tor_present && return 0
	local how
	if ! command -v apt-get >/dev/null 2>&1; then
		die "tor is not installed and this is not a Debian/Ubuntu system (no apt-get).
Install tor (it must include tor-gencert) with your package manager, then run this again."
	fi
	if [ "$(id -u)" = 0 ]; then
		how=""
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		how="sudo"
	else
		die "tor is not installed, and installing it needs root. Run:
    sudo apt-get install -y tor
then run this again."
	fi
	note "installing tor (apt-get install tor)"
	if ! { $how apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $how apt-get install -y -qq --no-install-recommends tor >/dev/null; }; then
		die "apt-get could not install tor (see the messages above). Install it by hand:
    sudo apt-get update && sudo apt-get install -y tor"
	fi
	tor_present || die "apt-get installed tor, but tor/tor-gencert are still not found"
	note "installed $(tor --version 2>/dev/null | head -1 || /usr/sbin/tor --version | head -1)"
}
