#!/usr/bin/env bash
# Drop-in for the original daemon.sh: daemon.sh <conf-file> <command>.
# A relative conf file is relative to the current directory (the original
# resolved it against its scripts directory). LISP_RUNNER chooses the Lisp.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for bin in "$here/../target/release/daemonization" "$(command -v daemonization || true)"; do
    if [ -n "$bin" ] && [ -x "$bin" ]; then
        exec "$bin" "$@"
    fi
done
echo "daemon.sh: the daemonization binary was not found: build it with" >&2
echo "  (cd '$here/..' && cargo build --release)" >&2
echo "or put daemonization on PATH." >&2
exit 5
