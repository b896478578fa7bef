#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (as root): the
# packages below, and the tool's own Debian package (built with cargo-deb),
# which tests/deb.rs checks as installed. The tests themselves create the
# test user dztest (and its group dztestextra) the first time they run.
#
# sbcl: the Lisp the daemons run on; cl-swank: the swank example and tests;
# cl-hunchentoot: the busy-site stop test; ecl, clisp: the runner tests;
# rsyslog: the syslog tests start their own rsyslogd; passwd: useradd for
# the test user; systemd: systemd-analyze verify; util-linux: unshare;
# script (bsdutils): the terminal tests; man-db, bash-completion: the
# installed package's man page and completions; emacs-nox, slime: SLIME
# connected in batch Emacs through the control socket (contrib/emacs);
# python3: a test's fake control socket; systemd-container, debootstrap:
# scripts/systemd-test.sh (a booted Debian container with a real systemd).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
packages=(sbcl cl-swank cl-hunchentoot ecl clisp rsyslog passwd systemd util-linux bsdutils
    man-db bash-completion zsh fish emacs-nox slime python3 systemd-container debootstrap)
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test-deps.sh installs packages and must run as root; the tests need root too." >&2
    echo "Run: sudo scripts/test-deps.sh   (it installs: ${packages[*]}, and this tool's .deb)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb
deb="$(cargo deb --locked --quiet | tail -n 1)"
dpkg -i "$deb" >/dev/null
echo "Installed the test dependencies and $(basename "$deb")."
