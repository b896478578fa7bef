#!/usr/bin/env bash
# The README's quick start: build the tool, make sure SBCL and Debian's
# cl-swank are there, and start the example conf-examples/hello.conf as a
# real daemon you can talk to (eval, repl, SLIME) through its control
# socket, with no TCP port open. As root it also installs what the tests
# need (scripts/test-deps.sh: the packages and this tool's .deb), so that
# `cargo test` passes next; as another user it says what to install.
#
# As root, the example does not run as root: the script creates the system
# user daemonization-demo (once; userdel -r daemonization-demo removes it),
# installs a root-owned copy of the example as /etc/daemonization/hello.conf
# (root only runs confs that only root can change), and starts that. As
# another user, it runs a copy without the :user, as that user.
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
if [ "$(id -u)" = 0 ]; then
    user=daemonization-demo
    if ! id -u "$user" >/dev/null 2>&1; then
        useradd --system --create-home --home-dir /var/lib/$user \
            --shell /usr/sbin/nologin "$user"
        echo "Created the system user $user to run the example (userdel -r $user removes it)."
    fi
    install -d -m 0755 -o root -g root /etc/daemonization
    install -m 0644 -o root -g root conf-examples/hello.conf /etc/daemonization/hello.conf
    conf=/etc/daemonization/hello.conf
else
    dir=$(mktemp -d)
    sed '/^ :user /d' conf-examples/hello.conf > "$dir/hello.conf"
    conf=$dir/hello.conf
fi
"$bin" "$conf" start
echo "Now: $bin $conf eval '(hello-ticks)'   (or repl, status -v, stop); SLIME: see the manual, doc/manual.md"
