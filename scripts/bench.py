#!/usr/bin/env python3
"""Benchmarks of daemonization, each against a baseline measured in the same
run (medians). Not a test: it prints a table for the README.

    cargo build --release && python3 scripts/bench.py [--runs N]

Needs sbcl, cl-swank and start-stop-daemon (Debian's dpkg).
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "daemonization")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"port {port} never answered")


def tool(env, conf, *args, check=True):
    out = subprocess.run([BIN, conf, *args], env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stdout}{out.stderr}")
    return out.stdout


def pid_of(line):
    return int(line.split("(pid = ")[1].split()[0])


def proc_kib(pid, file, field):
    """A field in kB of /proc/PID/FILE (VmRSS of status, Pss of smaps_rollup)."""
    with open(f"/proc/{pid}/{file}") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def rss_kib(pid):
    return proc_kib(pid, "status", "VmRSS")


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


SITE = """(:name "site" :pid-file "site-{i}.pid" :fasl-dir "{fasl}" {core}
 :preload (:hunchentoot :swank)
 :main-function #.(lambda ()
   (funcall (intern "START" "HUNCHENTOOT")
            (make-instance (intern "EASY-ACCEPTOR" "HUNCHENTOOT")
                           :port {port} :address "127.0.0.1" :access-log-destination nil))
   (funcall (intern "CREATE-SERVER" "SWANK") :port {swank} :dont-close t)))"""


def http_answers(port):
    """Sends one request; the time it was sent if it was answered, else None."""
    sent = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return sent if s.recv(64).startswith(b"HTTP/") else None
    except OSError:
        return None


def settled():
    """A daemon collects its start's garbage just after it said it was
    ready (some 30 ms at most here): memory is measured once that is done."""
    time.sleep(1)


def pss_kib(pid):
    return proc_kib(pid, "smaps_rollup", "Pss")


def cores(env, work, runs):
    """Saved cores vs the same site without one (warm fasl cache)."""
    rows = []
    fasl = os.path.join(work, "fasl") + "/"

    def conf(i, core):
        port, swank = free_port(), free_port()
        path = os.path.join(work, f"site-{i}-{'core' if core else 'plain'}.conf")
        with open(path, "w") as f:
            f.write(SITE.format(i=i, fasl=fasl, port=port, swank=swank,
                                core=(':core "%s"' % os.path.join(work, "site.core")) if core else ""))
        return path, port

    def ready_time(path, port):
        t = time.perf_counter()
        tool(env, path, "start")
        while True:
            sent = http_answers(port)
            if sent is not None:
                return sent - t

    plain, plain_port = conf(0, False)
    cored, cored_port = conf(0, True)
    ready_time(plain, plain_port)  # warm the fasl cache
    tool(env, plain, "stop")
    tool(env, cored, "build-core")
    def once(path, port):
        d = ready_time(path, port)
        tool(env, path, "stop")
        return d
    plain_t = statistics.median(once(plain, plain_port) for _ in range(runs))
    core_t = statistics.median(once(cored, cored_port) for _ in range(runs))
    rows.append(("start-to-ready of a Hunchentoot + swank site, from its core", f"{core_t*1000:.0f} ms",
                 f"{plain_t*1000:.0f} ms (the same without :core, warm fasl cache)", core_t / plain_t, "≤ 0.1×"))

    def downtime(path, port):
        tool(env, path, "start")
        while http_answers(port) is None:
            pass
        gaps, stop = [], [False]
        def watch():
            # Refused from the first request that failed until the first
            # one that was answered was sent (its connection was taken
            # then; a fresh image's first answer then takes ~60 ms more).
            down = None
            while not stop[0]:
                tried = time.perf_counter()
                sent = http_answers(port)
                if sent is None and down is None:
                    down = tried
                elif sent is not None and down is not None:
                    gaps.append(sent - down)
                    down = None
        import threading
        w = threading.Thread(target=watch)
        w.start()
        tool(env, path, "restart")
        while http_answers(port) is None:
            pass
        time.sleep(0.05)
        stop[0] = True
        w.join()
        tool(env, path, "stop")
        return max(gaps, default=0.0)
    plain_d = statistics.median(downtime(plain, plain_port) for _ in range(runs))
    core_d = statistics.median(downtime(cored, cored_port) for _ in range(runs))
    rows.append(("restart downtime (connections refused)", f"{core_d*1000:.0f} ms",
                 f"{plain_d*1000:.0f} ms (without :core)", core_d / plain_d if plain_d else None, "≤ 0.1×, ≤ 50 ms"))

    def memory(core):
        confs = [conf(i, core) for i in range(1, 6)]
        pids = [pid_of(tool(env, c, "start")) for c, _ in confs]
        settled()
        rss = rss_kib(pids[0])
        pss = sum(pss_kib(p) for p in pids)
        for c, _ in confs:
            tool(env, c, "stop")
        return rss, pss
    plain_rss, plain_pss = memory(False)
    core_rss, core_pss = memory(True)
    rows.append(("resident memory of the daemon, from its core", f"{core_rss/1024:.1f} MiB",
                 f"{plain_rss/1024:.1f} MiB (without :core)", core_rss / plain_rss, "lower"))
    rows.append(("proportional memory (PSS) of 5 daemons of one core", f"{core_pss/1024:.1f} MiB",
                 f"{plain_pss/1024:.1f} MiB (5 without :core)", core_pss / plain_pss, "≤ 0.6×"))
    return rows


def site_conf(work, name, port, listen, core=None):
    """A Hunchentoot site: / answers at once, /slow after a second; on a
    held socket (:listen) or binding its own port; on the saved core CORE
    if given."""
    fasl = os.path.join(work, "fasl") + "/"
    held = f':listen ((:name "http" :port {port} :address "127.0.0.1"))' if listen else ""
    if core:
        held += f' :core "{core}"'
    acceptor = ('(daemonization:make-acceptor :listener "http" :access-log-destination nil)' if listen else
                f'(make-instance (intern "EASY-ACCEPTOR" "HUNCHENTOOT") :port {port} :address "127.0.0.1" :access-log-destination nil)')
    path = os.path.join(work, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f"""(:pid-file "{name}.pid" :name "{name}" :fasl-dir "{fasl}" {held}
 :preload (:hunchentoot)
 :main-function #.(lambda ()
   (eval (read-from-string "(hunchentoot:define-easy-handler (home :uri \\"/\\") () \\"ok\\")"))
   (eval (read-from-string "(hunchentoot:define-easy-handler (slow :uri \\"/slow\\") () (sleep 1) \\"slow\\")"))
   (hunchentoot:start {acceptor})))""")
    return path


def request(port, uri):
    """How one request on a fresh connection ended."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "reset"
    try:
        s.sendall(f"GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "timeout"
    except OSError:
        return "reset"
    finally:
        s.close()
    if data.count(b"HTTP/1.1 ") > 1:
        return "duplicate"
    if not data.startswith(b"HTTP/1.1 200"):
        return "eof" if not data else "non-200"
    return "ok"


def restarts(env, work, runs):
    """20 restarts of a Hunchentoot site under clients that never pause
    (fresh connections, quick and one-second requests), each on its saved
    core: with :listen (the replacement) against the same site without it
    (stop, then start)."""
    import threading
    rows = []
    for listen in (True, False):
        port = free_port()
        name = "held" if listen else "plain"
        conf = site_conf(work, name, port, listen, os.path.join(work, f"{name}.core"))
        tool(env, conf, "build-core")
        tool(env, conf, "--timeout", "300", "start")
        stop = threading.Event()
        counts = {}
        lock = threading.Lock()
        def client(uri):
            while not stop.is_set():
                end = request(port, uri)
                with lock:
                    counts[(uri, end)] = counts.get((uri, end), 0) + 1
        threads = [threading.Thread(target=client, args=("/slow" if i < 2 else "/",)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(1)
        for _ in range(20):
            tool(env, conf, "restart", check=False)
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
        tool(env, conf, "stop", check=False)
        lost = {k: v for k, v in counts.items() if k[1] != "ok"}
        slow_cut = sum(v for (uri, end), v in lost.items() if uri == "/slow")
        total = sum(counts.values())
        kinds = ", ".join(f"{uri} {end} {v}" for (uri, end), v in sorted(lost.items())) or "none"
        rows.append((f"20 restarts under traffic, on a core, {'with :listen' if listen else 'without :listen (baseline)'}",
                     f"{total - sum(lost.values())} of {total} answered", f"lost: {kinds}; slow cut: {slow_cut}",
                     None, "0 lost with :listen", "–"))
    return rows


def start_to_ready(env, conf, runs):
    """The median time `start` of CONF takes, a stop after each."""
    def once():
        t = time.perf_counter()
        tool(env, conf, "start")
        d = time.perf_counter() - t
        tool(env, conf, "stop")
        return d
    return statistics.median(once() for _ in range(runs))


def ready_times(env, work, runs, confs):
    """The median start-to-ready of each conf text in CONFS (by name)."""
    times = {}
    for name, text in confs.items():
        c = os.path.join(work, f"ready-{name}.conf")
        with open(c, "w") as f:
            f.write(text)
        times[name] = start_to_ready(env, c, runs)
    return times


def notify_ready(env, work, runs):
    """Start-to-ready of a main that never returns (:ready :notify) against
    the same main returning."""
    main = {"returned": "t", "notify": "(progn (daemonization:ready) (loop (sleep 10)))"}
    times = ready_times(env, work, runs, {
        mode: f'(:pid-file "{mode}.pid" :ready :{mode} :main-function #.(lambda () {main[mode]}))'
        for mode in main})
    return [("start-to-ready, a main that never returns (:ready :notify)", f"{times['notify']*1000:.1f} ms",
             f"{times['returned']*1000:.1f} ms (the same main returning)", times["notify"] / times["returned"], "≤ 1.1×")]


def control_cost(env, work, runs):
    """Start-to-ready with the control socket (the default) against the
    same conf with :control nil: what the socket costs a start."""
    times = ready_times(env, work, runs, {
        control: f'(:pid-file "control-{control}.pid" :control {control} :main-function #.(lambda () t))'
        for control in ("t", "nil")})
    return [("start-to-ready with the control socket", f"{times['t']*1000:.1f} ms",
             f"{times['nil']*1000:.1f} ms (:control nil)", times["t"] / times["nil"], "none: what it costs")]


def output_cost(env, work, runs):
    """200,000 access-log lines written by an SBCL daemon without a
    supervisor through its line keeper (:output) against the same lines
    written to the same file by a line-buffered stream of SBCL's own on the
    same descriptor (SBCL's standard output as it is without the keeper),
    as the Lisp measures it."""
    times = {}
    line = '"127.0.0.1 - [07/Dec/2026:15:00:00] \\"GET /index.html HTTP/1.1\\" 200 1234 ~d~%"'
    for kind in ("keeper", "fd-stream"):
        c = os.path.join(work, f"output-{kind}.conf")
        log = os.path.join(work, f"output-{kind}.log")
        took = os.path.join(work, f"output-{kind}.time")
        keys = f':output "{log}"'
        if kind == "keeper":
            write = f"(dotimes (i 200000) (format t {line} i))"
        else:
            write = ("(let ((s (sb-sys:make-fd-stream 1 :output t :buffering :line :external-format :utf-8))) "
                     f"(dotimes (i 200000) (format s {line} i)) (finish-output s))")
        with open(c, "w") as f:
            f.write(f'(:pid-file "output-{kind}.pid" {keys} :main-function #.(lambda () '
                    f"(let ((start (get-internal-real-time))) {write} "
                    f'(with-open-file (s "{took}" :direction :output :if-exists :supersede) '
                    f"(format s \"~f\" (/ (- (get-internal-real-time) start) internal-time-units-per-second)))) t))")
        samples = []
        for _ in range(runs):
            tool(env, c, "--timeout", "300", "start")
            tool(env, c, "stop")
            with open(took) as f:
                samples.append(float(f.read()))
            os.remove(log)
        times[kind] = statistics.median(samples)
    return [("200,000 lines written by an SBCL daemon without a supervisor (`--only output`)",
             f"{times['keeper']*1000:.0f} ms (its line keeper, :output)",
             f"{times['fd-stream']*1000:.0f} ms (SBCL's own line-buffered stream on the same descriptor)",
             times["keeper"] / times["fd-stream"], "none: what whole lines cost")]


def everything(env, work, runs):
    """Every row but --only's: the tool against its baselines."""
    rows = []
    # 1. status of a running daemon vs start-stop-daemon --status.
    idle = os.path.join(work, "idle.conf")
    with open(idle, "w") as f:
        f.write('(:pid-file "idle.pid" :main-function #.(lambda () t))')
    tool(env, idle, "start")
    pidfile = os.path.join(work, "idle.pid")
    # Both spawned the same way (output captured), many times.
    ours = timed(lambda: subprocess.run([BIN, idle, "status"], env=env, capture_output=True, check=True), runs * 20)
    ssd = shutil.which("start-stop-daemon") or "/sbin/start-stop-daemon"
    base = timed(lambda: subprocess.run([ssd, "--status", "--pidfile", pidfile], env=env, capture_output=True, check=True), runs * 20)
    rows.append(("`status`", f"{ours*1000:.2f} ms", f"{base*1000:.2f} ms (start-stop-daemon --status)", ours / base, "≤ 2×"))

    # 4. resident memory of a daemon that uses no ASDF vs bare sbcl sleeping.
    daemon_rss = rss_kib(pid_of(tool(env, idle, "status")))
    bare = subprocess.Popen(["sbcl", "--noinform", "--non-interactive", "--eval",
                             "(progn (with-open-file (s \"%s\" :direction :output) (print 1 s)) (sleep 600))" % os.path.join(work, "bare-ready")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(os.path.join(work, "bare-ready")):
        time.sleep(0.01)
    time.sleep(0.2)
    bare_rss = rss_kib(bare.pid)
    bare.kill()
    bare.wait()
    rss_row = ("resident memory, conf without ASDF", f"{daemon_rss/1024:.1f} MiB",
               f"{bare_rss/1024:.1f} MiB (bare sbcl sleeping)", None, "≤ +8 MB",
               f"+{(daemon_rss-bare_rss)/1024:.1f} MiB")

    # The supervisor of supervise mode: its own resident memory.
    sup = os.path.join(work, "sup.conf")
    with open(sup, "w") as f:
        f.write('(:pid-file "sup.pid" :restart :on-failure :main-function #.(lambda () t))')
    supervisor = pid_of(tool(env, sup, "start"))
    sup_rss = rss_kib(supervisor)
    tool(env, sup, "stop")
    sup_row = ("resident memory of the supervisor (supervise mode)", f"{sup_rss/1024:.1f} MiB", "–", None, "< 2 MiB")

    # 3. stop of a cooperative daemon.
    def stop_once():
        tool(env, idle, "start")
        t = time.perf_counter()
        tool(env, idle, "stop")
        return time.perf_counter() - t
    stop_time = statistics.median(stop_once() for _ in range(runs))

    # 2. start-to-ready of swank.conf vs bare sbcl creating the server.
    with open(os.path.join(ROOT, "conf-examples", "swank.conf")) as f:
        swank_text = f.read()
    def ours_swank():
        port = free_port()
        conf = os.path.join(work, "swank.conf")
        with open(conf, "w") as f:
            f.write(swank_text.replace(":port 4005", f":port {port}"))
        t = time.perf_counter()
        tool(env, conf, "start")
        wait_port(port)
        d = time.perf_counter() - t
        tool(env, conf, "stop")
        return d
    def bare_swank():
        port = free_port()
        t = time.perf_counter()
        p = subprocess.Popen(["sbcl", "--noinform", "--non-interactive", "--eval", "(require :asdf)",
                              "--eval", "(asdf:load-system :swank)", "--eval",
                              f"(funcall (find-symbol \"CREATE-SERVER\" :swank) :port {port} :dont-close t)",
                              "--eval", "(sleep 600)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        d = time.perf_counter() - t
        p.kill()
        p.wait()
        return d
    ours_swank()  # warm the fasl cache
    swank_ours = statistics.median(ours_swank() for _ in range(runs))
    swank_bare = statistics.median(bare_swank() for _ in range(runs))
    rows.append(("start-to-ready of swank.conf (port answers)", f"{swank_ours*1000:.0f} ms",
                 f"{swank_bare*1000:.0f} ms (bare sbcl loading swank)", swank_ours / swank_bare, "≤ 1.1×"))
    rows.append(("stop of a cooperative daemon", f"{stop_time*1000:.1f} ms", "–", None, "≤ 50 ms"))
    rows.append(rss_row)
    rows.append(sup_row)

    # 5. 50 daemons started in parallel, all ready, then stopped.
    confs = []
    for i in range(50):
        c = os.path.join(work, f"p{i}.conf")
        with open(c, "w") as f:
            f.write(f'(:pid-file "p{i}.pid" :main-function #.(lambda () t))')
        confs.append(c)
    def fifty_ours():
        t = time.perf_counter()
        starts = [subprocess.Popen([BIN, c, "start"], env=env, stdout=subprocess.DEVNULL) for c in confs]
        assert all(p.wait() == 0 for p in starts)
        stops = [subprocess.Popen([BIN, c, "stop"], env=env, stdout=subprocess.DEVNULL) for c in confs]
        assert all(p.wait() == 0 for p in stops)
        return time.perf_counter() - t
    def fifty_bare():
        t = time.perf_counter()
        marks = [os.path.join(work, f"b{i}") for i in range(50)]
        procs = [subprocess.Popen(["sbcl", "--noinform", "--non-interactive", "--eval",
                                   f"(progn (with-open-file (s \"{m}\" :direction :output :if-exists :supersede) (print 1 s)) (sleep 600))"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for m in marks]
        while not all(os.path.exists(m) for m in marks):
            time.sleep(0.005)
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        for m in marks:
            os.unlink(m)
        return time.perf_counter() - t
    r = max(3, runs // 3)
    par_ours = statistics.median(fifty_ours() for _ in range(r))
    par_bare = statistics.median(fifty_bare() for _ in range(r))
    rows.append(("50 daemons started in parallel, ready, stopped", f"{par_ours*1000:.0f} ms",
                 f"{par_bare*1000:.0f} ms (50 bare sbcl started and killed)", par_ours / par_bare, "≤ 1.3×"))
    # 6. status of 100 running daemons through a directory of confs, vs
    # 100 start-stop-daemon --status run in parallel.
    fleet = os.path.join(work, "fleet")
    os.mkdir(fleet)
    for i in range(100):
        with open(os.path.join(fleet, f"d{i:03}.conf"), "w") as f:
            f.write(f'(:pid-file "d{i:03}.pid" :main-function #.(lambda () t))')
    subprocess.run([BIN, fleet, "start"], env=env, capture_output=True, check=True)
    try:
        dir_status = timed(lambda: subprocess.run([BIN, fleet, "status"], env=env, capture_output=True, check=True), runs)
        pidfiles = [os.path.join(work, f"d{i:03}.pid") for i in range(100)]
        def ssd_all():
            procs = [subprocess.Popen([ssd, "--status", "--pidfile", pf], stdout=subprocess.DEVNULL) for pf in pidfiles]
            assert all(p.wait() == 0 for p in procs)
        ssd_status = timed(ssd_all, runs)
    finally:
        subprocess.run([BIN, fleet, "stop"], env=env, capture_output=True)
    rows.append(("`status` of 100 daemons (a directory of confs)", f"{dir_status*1000:.0f} ms",
                 f"{ssd_status*1000:.0f} ms (100 start-stop-daemon --status in parallel)",
                 dir_status / ssd_status, "< 100 ms"))
    # 7. saved cores.
    rows.extend(cores(env, work, max(3, runs // 3)))
    rows.extend(notify_ready(env, work, runs))
    rows.extend(restarts(env, work, runs))
    # Start-to-ready per runner, against the bare Lisp running one form.
    bare_cmd = {
        "sbcl": ["sbcl", "--noinform", "--non-interactive", "--eval", "(sb-ext:exit)"],
        "ecl": ["ecl", "--norc", "--eval", "(ext:quit 0)"],
        "clisp": ["clisp", "-q", "-q", "-norc", "-x", "(ext:exit 0)"],
    }
    for lisp, bare_args in bare_cmd.items():
        if not shutil.which(lisp):
            continue
        c = os.path.join(work, f"{lisp}-ready.conf")
        with open(c, "w") as f:
            f.write(f'(:pid-file "{lisp}-ready.pid" :lisp :{lisp} :main-function #.(lambda () t))')
        ours = start_to_ready(env, c, runs)
        base = timed(lambda: subprocess.run(bare_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), runs)
        rows.append((f"start-to-ready on {lisp}", f"{ours*1000:.1f} ms", f"{base*1000:.1f} ms (bare {lisp} running one form)", ours / base, "–"))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--only", choices=["cores", "restarts", "notify", "control", "output"], help="run only this part")
    parsed = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="daemonization-bench-")
    # Logging off: this machine may run no syslog daemon, and a failing
    # connection per command would be measured instead of the tool.
    quiet = os.path.join(work, "logging.conf")
    with open(quiet, "w") as f:
        f.write("(:info-destination nil :error-destination nil :trace-destination nil"
                " :admin-info-destination nil :admin-error-destination nil :admin-trace-destination nil)")
    env = dict(os.environ, DAEMONIZATION_PID_DIR=work, LOGGING_CONF=quiet)
    try:
        if parsed.only == "cores":
            rows = cores(env, work, parsed.runs)
        elif parsed.only == "restarts":
            rows = restarts(env, work, parsed.runs)
        elif parsed.only == "notify":
            rows = notify_ready(env, work, parsed.runs)
        elif parsed.only == "control":
            rows = control_cost(env, work, parsed.runs)
        elif parsed.only == "output":
            rows = output_cost(env, work, parsed.runs)
        else:
            rows = everything(env, work, parsed.runs)
    finally:
        for name in os.listdir(work):
            if name.endswith(".conf") and name != "logging.conf":
                tool(env, os.path.join(work, name), "stop", check=False)
        shutil.rmtree(work, ignore_errors=True)
    print_rows(rows)


def print_rows(rows):
    print("| what | daemonization | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        what, ours, base, ratio, target = row[:5]
        shown = f"{ratio:.2f}×" if ratio is not None else (row[5] if len(row) > 5 else "–")
        print(f"| {what} | {ours} | {base} | {shown} | {target} |")


if __name__ == "__main__":
    main()
