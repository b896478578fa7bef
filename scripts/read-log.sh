#!/bin/sh
# Follow daemonization's log lines in the syslog file, as the original's
# contrib/linux/read-log.sh did:  scripts/read-log.sh [SYSLOG-FILE]
tail -n +1 -F "${1:-/var/log/syslog}" | grep --line-buffered -o '(:DAEMONIZATION.*'
