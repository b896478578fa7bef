#!/usr/bin/env bash
# The tool under a real systemd: boots a Debian 12 container with
# systemd-nspawn (systemd 252 as its PID 1), installs this tool's .deb,
# and drives the template unit daemonization@.service as an admin would:
# enable --now, status through systemctl and through the tool, eval, reload,
# the journal, stop, and a start that fails. Prints each step; exits 0 only
# if every check passed.
#
#   sudo scripts/systemd-test.sh            # builds the .deb with cargo-deb
#   DEB=path/to.deb sudo scripts/systemd-test.sh
#
# Needs root, systemd-container and debootstrap (apt-get install
# systemd-container debootstrap). The container's root file system is made
# once with debootstrap from the Debian mirror apt already uses and cached
# as /var/cache/daemonization-test/bookworm.tar (remove it to rebuild); each
# run unpacks a fresh copy in a temporary directory and removes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/systemd-test.sh must run as root (it boots a container)" >&2; exit 4; }
for program in systemd-nspawn debootstrap; do
    command -v "$program" >/dev/null || {
        echo "this script needs $program: apt-get install systemd-container debootstrap" >&2
        exit 5
    }
done
cache=/var/cache/daemonization-test/bookworm.tar
if [ ! -s "$cache" ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    build=$(mktemp -d)
    echo "Making the container's root file system (debootstrap, a few minutes)..."
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,sbcl,cl-swank,cl-hunchentoot,curl,passwd \
        bookworm "$build/root" "$mirror" >/dev/null
    mkdir -p "$(dirname "$cache")"
    tar -C "$build/root" -cf "$cache.new" .
    mv "$cache.new" "$cache"
    rm -rf "$build"
fi
deb=${DEB:-}
if [ -z "$deb" ]; then
    command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb
    deb=$(cargo deb --locked --quiet | tail -n 1)
fi
work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$cache"
cp "$deb" "$root/root/daemonization.deb"
cp conf-examples/site.conf "$root/root/site.conf"
# What runs inside, once the container has booted; it powers it off.
cat > "$root/root/inside.sh" <<'INSIDE'
#!/bin/bash
exec > /root/result 2>&1
failed=0
step() { echo "== $*"; }
check() { if "$@"; then echo "ok: $*"; else echo "FAILED: $*"; failed=1; journalctl -n 15 --no-pager; fi; }
step install
check dpkg -i /root/daemonization.deb
step "the README's walk-through"
check useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin site
check install -m 0644 /root/site.conf /etc/daemonization/site.conf
check daemonization /etc/daemonization/site.conf check
check systemctl enable --now daemonization@site
check daemonization /etc/daemonization/site.conf status -v
check sh -c 'curl -s http://localhost:8080/ | grep -q "Hello from SBCL"'
check sh -c 'timeout 10 journalctl -u daemonization@site -n 1000 -f --no-pager | grep -q -m1 "Started"'
check daemonization /etc/daemonization/site.conf restart
check sh -c 'curl -s http://localhost:8080/ | grep -q "Hello from SBCL"'
# The walk-through's repl, at a terminal script(1) makes: a form, Ctrl-D.
check sh -c 'printf "(+ 1 2)\r\004" | timeout 30 script -qec "daemonization /etc/daemonization/site.conf repl" /dev/null | tr -d "\r" | grep -qx 3'
check sh -c '[ "$(daemonization /etc/daemonization/site.conf eval "(sb-posix:getuid)")" = "$(id -u site)" ]'
check sh -c '! daemonization /etc/daemonization/site.conf stop'
check systemctl stop daemonization@site
step the packaged example
useradd --system --create-home --home-dir /var/lib/daemonization-demo \
    --shell /usr/sbin/nologin daemonization-demo
install -m 0644 /etc/daemonization/hello.conf.example /etc/daemonization/hello.conf
cat > /etc/daemonization/svc.conf <<'CONF'
(:name "svc" :user "daemonization-demo" :pid-file "svc.pid" :ready :notify
 :reload-function #.(lambda () (setf (symbol-function 'cl-user::reloaded) (lambda () t)))
 :main-function #.(lambda () (daemonization:ready "serving") (loop (sleep 60))))
CONF
cat > /etc/daemonization/port.conf <<'CONF'
(:name "port" :user "daemonization-demo" :pid-file "port.pid" :ready (:port 8091)
 :main-function #.(lambda ()
   (require :sb-bsd-sockets)
   (let ((s (make-instance (find-symbol "INET-SOCKET" "SB-BSD-SOCKETS") :type :stream :protocol :tcp)))
     (funcall (find-symbol "SOCKET-BIND" "SB-BSD-SOCKETS") s #(127 0 0 1) 8091)
     (funcall (find-symbol "SOCKET-LISTEN" "SB-BSD-SOCKETS") s 5)
     (loop (funcall (find-symbol "SOCKET-CLOSE" "SB-BSD-SOCKETS")
                    (funcall (find-symbol "SOCKET-ACCEPT" "SB-BSD-SOCKETS") s))))))
CONF
cat > /etc/daemonization/broken.conf <<'CONF'
(:name "broken" :pid-file "broken.pid" :main-function #.(lambda () (error "no database")))
CONF
step enable --now
check systemctl enable --now daemonization@hello daemonization@svc
check systemctl is-active daemonization@hello
check systemctl is-active daemonization@svc
step "a main that never returns, ready when its port answers"
check systemctl start daemonization@port
check systemctl is-active daemonization@port
check sh -c 'daemonization /etc/daemonization/port.conf status | grep -q "^running (pid = $(systemctl show -P MainPID daemonization@port) "'
check sh -c 'curl -s -o /dev/null telnet://127.0.0.1:8091 --max-time 2; [ $? != 7 ]'
check systemctl stop daemonization@port
step status through the tool
daemonization /etc/daemonization/svc.conf status
check sh -c 'daemonization /etc/daemonization/svc.conf status | grep -q "^running (pid = $(systemctl show -P MainPID daemonization@svc) "'
check sh -c 'systemctl status daemonization@svc | grep -q "Status: \"serving\""'
step eval
check sh -c 'daemonization /etc/daemonization/hello.conf eval "(hello-ticks)" | grep -Eq "^[0-9]+$"'
check sh -c '[ "$(daemonization /etc/daemonization/svc.conf eval "(sb-posix:getuid)")" = "$(id -u daemonization-demo)" ]'
step reload
check systemctl reload daemonization@svc
check sh -c '[ "$(daemonization /etc/daemonization/svc.conf eval "(cl-user::reloaded)")" = T ]'
check sh -c '! systemctl reload daemonization@hello'
step the journal
check sh -c 'journalctl -u daemonization@svc --no-pager | grep -q "Started"'
step stop
check systemctl stop daemonization@svc
# Each of the daemon's lines reaches the journal once (its stderr and its
# log line were both there).
check sh -c '[ "$(journalctl -u daemonization@svc --no-pager | grep -c "Stop svc daemon")" = 1 ]'
check sh -c '! systemctl is-active -q daemonization@svc'
check sh -c 'daemonization /etc/daemonization/svc.conf status; [ $? = 3 ]'
step a start that fails
check sh -c '! systemctl start daemonization@broken'
check sh -c '[ "$(systemctl show -P Result daemonization@broken)" != success ]'
check sh -c 'journalctl -u daemonization@broken --no-pager | grep -q "no database"'
systemctl stop daemonization@hello
echo "== result: $failed"
sync
systemctl poweroff
INSIDE
chmod 755 "$root/root/inside.sh"
cat > "$root/etc/systemd/system/dz-inside.service" <<'UNIT'
[Unit]
Description=daemonization's systemd test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/inside.sh
[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../dz-inside.service "$root/etc/systemd/system/multi-user.target.wants/dz-inside.service"
echo "Booting the container (systemd-nspawn)..."
# The host's /run is not a tmpfs and no systemd runs on it: nspawn needs a
# private tmpfs on /run/systemd/nspawn, and --register=no --keep-unit.
unshare -m sh -c '
    mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn
    exec systemd-nspawn -q -D "$1" --register=no --keep-unit -b' sh "$root" \
    > "$work/console" 2>&1 &
pid=$!
# Ends with the container's poweroff; a bound far above what it takes.
for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    grep -q '^== result' "$root/root/result" 2>/dev/null && wait "$pid" 2>/dev/null && break
    sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
    echo "the container did not finish within 10 minutes; its console:" >&2
    tail -n 40 "$work/console" >&2
    exit 1
fi
cat "$root/root/result" 2>/dev/null || { echo "no result; the console:" >&2; tail -n 40 "$work/console" >&2; exit 1; }
grep -q '^== result: 0$' "$root/root/result"
