#!/usr/bin/env bash
# The README's quick start: build the tool, make sure SBCL and Debian's
# cl-swank are there (installing them with apt when run as root), and start
# the swank example as a real daemon.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
missing=()
command -v sbcl >/dev/null || missing+=(sbcl)
[ -e /usr/share/common-lisp/source/slime/swank.asd ] || missing+=(cl-swank)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "Please install ${missing[*]} first: sudo apt-get install ${missing[*]}" >&2
        exit 5
    fi
fi
cargo build --release --quiet
bin=target/release/daemonization
"$bin" conf-examples/swank.conf start
echo "Now: $bin conf-examples/swank.conf status   (and stop); SLIME: M-x slime-connect 127.0.0.1 4005"
