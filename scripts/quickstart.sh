#!/usr/bin/env bash
# The README's quick start: build the tool, make sure SBCL and Debian's
# cl-swank are there, and start the swank example as a real daemon. As
# root it also installs what the tests need (scripts/test-deps.sh: the
# packages and this tool's .deb), so that `cargo test` passes next; as
# another user it says what to install.
#
# A swank server gives whoever connects to its port the power of the user it
# runs as, and any local user can connect to 127.0.0.1:4005. So when this
# script runs as root, the example does not run as root: the script creates
# the system user daemonization-demo (once), installs a root-owned copy of
# the example naming that :user as /etc/daemonization/swank.conf (root only
# runs confs that only root can change), and starts that one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    scripts/test-deps.sh
else
    missing=()
    command -v sbcl >/dev/null || missing+=(sbcl)
    [ -e /usr/share/common-lisp/source/slime/swank.asd ] || missing+=(cl-swank)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Please install ${missing[*]} first: sudo apt-get install ${missing[*]}" >&2
        exit 5
    fi
    echo "The tests need root and more packages: sudo scripts/test-deps.sh, then sudo cargo test." >&2
fi
cargo build --release --quiet
bin=$PWD/target/release/daemonization
conf=conf-examples/swank.conf
if [ "$(id -u)" = 0 ]; then
    user=daemonization-demo
    if ! id -u "$user" >/dev/null 2>&1; then
        useradd --system --create-home --home-dir /var/lib/$user \
            --shell /usr/sbin/nologin "$user"
        echo "Created the system user $user to run the example (userdel -r $user removes it)."
    fi
    install -d -m 0755 -o root -g root /etc/daemonization
    sed "s/^(:name \"swank\"/(:name \"swank\" :user \"$user\"/" "$conf" |
        install -m 0644 -o root -g root /dev/stdin /etc/daemonization/swank.conf
    conf=/etc/daemonization/swank.conf
fi
"$bin" "$conf" start
echo "Now: $bin $conf status   (and stop); SLIME: M-x slime-connect 127.0.0.1 4005"
