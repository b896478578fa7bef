//! Supervise mode: a Rust supervisor restarts the Lisp per the policy.

use std::fs;
use std::path::Path;

use crate::util::*;

/// A conf whose main function appends the Lisp's pid to `starts`, then runs `body`.
fn conf(
    sb: &Sandbox,
    name: &str,
    keys: &str,
    body: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let starts = sb.path(&format!("{name}.starts"));
    let conf = sb.conf(
        &format!("{name}.conf"),
        &format!(
            "(:pid-file \"{name}.pid\" :name \"{name}\" {keys}\n\
             :main-function #.(lambda ()\n\
               (with-open-file (s {} :direction :output :if-exists :append :if-does-not-exist :create)\n\
                 (format s \"~d~%\" (sb-posix:getpid)))\n\
               {body}))",
            lisp_string(starts.to_str().unwrap())
        ),
    );
    (conf, starts)
}

/// A thread that exits with `code` once the test says the first start is
/// over (`started`): the Lisps of the restarts exit at once.
fn exit_once_started(sb: &Sandbox, code: i32) -> String {
    format!(
        "(sb-thread:make-thread (lambda () \
           (loop until (probe-file {}) do (sleep 0.02)) \
           (sb-ext:exit :code {code} :abort t)))",
        lisp_string(sb.path("started").to_str().unwrap())
    )
}

/// Tells the daemons of `exit_once_started` that the first start is over.
fn started(sb: &Sandbox) {
    fs::write(sb.path("started"), "").unwrap();
}

fn pids(starts: &Path) -> Vec<i32> {
    fs::read_to_string(starts)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// The Lisp pid and restart count from `status --print plist`.
fn supervised(sb: &Sandbox, conf: &Path) -> (i32, u32) {
    let out = stdout(&sb.run(conf, &["status", "--print", "plist"]));
    let field = |key: &str| {
        let rest = &out[out.find(key).unwrap_or_else(|| panic!("{key} in {out}")) + key.len()..];
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_string()
    };
    (
        field(":lisp-pid ").parse().unwrap_or(0),
        field(":restarts ").parse().unwrap(),
    )
}

/// :restart :on-failure: a Lisp killed with SIGKILL is replaced by a new
/// one, which runs its main function; status shows both pids and the count.
#[test]
fn on_failure_restarts_a_killed_lisp() {
    let sb = Sandbox::new();
    let (conf, starts) = conf(&sb, "web", ":restart :on-failure :restart-delay 0.2", "t");
    let out = sb.run(&conf, &["start"]);
    let supervisor = pid_in(&stdout(&out)).unwrap_or_else(|| panic!("{}", stderr(&out)));
    assert!(
        holds_lock(supervisor, &sb.path("web.pid.lock")),
        "the supervisor holds the lock"
    );
    let (lisp, restarts) = supervised(&sb, &conf);
    assert_eq!((pids(&starts), restarts), (vec![lisp], 0));
    sb.track(lisp);
    assert_ne!(lisp, supervisor);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lisp),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(30, || pids(&starts).len() == 2),
        "a new Lisp ran its main function"
    );
    let (new_lisp, restarts) = supervised(&sb, &conf);
    sb.track(new_lisp);
    assert_eq!((restarts, pids(&starts)[1]), (1, new_lisp));
    let line = stdout(&sb.run(&conf, &["status"]));
    assert_eq!(
        line,
        format!(
            "running (pid = {supervisor} pid-file = {}) - supervising (lisp-pid = {new_lisp} restarts = 1 last-exit = killed by SIGKILL)\n",
            sb.pid_file("web.pid").display()
        )
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(supervisor) && !alive(new_lisp), "nothing left");
    assert!(!sb.pid_file("web.pid").exists() && !sb.path("web.pid.state").exists());
}

/// A Lisp that keeps dying hits the start limit: the supervisor gives up,
/// logs it, and leaves no process behind; its record says so in `status`
/// (failed - start-limit, with the last cause) until stop clears it.
#[test]
fn start_limit_gives_up() {
    let sb = Sandbox::new();
    let (conf, starts) = conf(
        &sb,
        "flaky",
        ":restart :on-failure :restart-delay 0.1 :start-limit (3 30)",
        &exit_once_started(&sb, 3),
    );
    let supervisor = pid_in(&stdout(&sb.run(&conf, &["start"]))).unwrap();
    started(&sb);
    assert!(
        wait_until(60, || !alive(supervisor)),
        "the supervisor gave up"
    );
    let lisps = pids(&starts);
    assert_eq!(lisps.len(), 3, "{lisps:?}");
    assert!(lisps.iter().all(|p| !alive(*p)));
    assert!(!sb.pid_file("flaky.pid").exists());
    assert!(
        sb.log()
            .contains("giving up: 3 starts within 30 s; the Lisp exited with status 3"),
        "{}",
        sb.log()
    );
    let p = sb.pid_file("flaky.pid");
    let out = sb.run(&conf, &["status"]);
    assert_line(
        &out,
        1,
        &format!("failed - start-limit (pid-file = {})", p.display()),
    );
    assert_eq!(
        stderr(&out),
        "ERROR: the supervisor gave up at :start-limit; the Lisp exited with status 3. \
         Fix it and start it again (zap or stop clears this record)\n"
    );
    let plist = stdout(&sb.run(&conf, &["status", "--print", "plist"]));
    assert!(
        plist.contains(":status \"failed\" :reason \"start-limit\""),
        "{plist}"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert_eq!(sb.run(&conf, &["status"]).status.code(), Some(3));
}

/// Why a Lisp died, named: running out of heap (with the size and the key
/// to raise it), out of control stack, a thread's unhandled error; the
/// supervisor's record and status say it.
#[test]
fn the_cause_of_death_is_named() {
    let sb = Sandbox::new();
    let cases = [
        (
            "heap",
            ":dynamic-space-size 64",
            "(make-array (* 200 1024 1024) :element-type '(unsigned-byte 8))",
            "ran out of heap (raise :dynamic-space-size, now 64 MB)",
        ),
        (
            "stack",
            ":output \"stack.out\"",
            "(labels ((deep (n) (1+ (deep n)))) (deep 0))",
            "ran out of control stack (raise :control-stack-size)",
        ),
        (
            "thread",
            "",
            "(error \"no database at ~a\" \"db:5432\")",
            "died of an unhandled error in a thread: no database at db:5432",
        ),
    ];
    for (name, keys, deed, cause) in cases {
        let (conf, _) = conf(
            &sb,
            name,
            &format!(":restart :on-failure :restart-delay 0.1 :start-limit (1 60) {keys}"),
            &format!(
                "(sb-thread:make-thread (lambda () (loop until (probe-file {}) do (sleep 0.02)) {deed}) :name \"worker\")",
                lisp_string(sb.path(&format!("{name}.go")).to_str().unwrap())
            ),
        );
        let supervisor = started_pid(&sb.run(&conf, &["start"]));
        sb.track(supervisor);
        fs::write(sb.path(&format!("{name}.go")), "").unwrap();
        assert!(wait_until(60, || !alive(supervisor)), "{name}: gave up");
        let out = sb.run(&conf, &["status"]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            stderr(&out).contains(&format!("at :start-limit; the Lisp {cause}. Fix it")),
            "{name}: {}",
            stderr(&out)
        );
        assert_eq!(sb.run(&conf, &["zap"]).status.code(), Some(0), "{name}");
    }
}

/// :restart :always restarts after a clean exit too; kill ends both.
#[test]
fn always_restarts_after_a_clean_exit() {
    let sb = Sandbox::new();
    let (conf, starts) = conf(
        &sb,
        "cron",
        ":restart :always :restart-delay 0.1",
        &exit_once_started(&sb, 0),
    );
    let supervisor = pid_in(&stdout(&sb.run(&conf, &["start"]))).unwrap();
    started(&sb);
    assert!(
        wait_until(30, || pids(&starts).len() >= 2),
        "restarted after exit 0"
    );
    for pid in pids(&starts) {
        sb.track(pid);
    }
    assert_eq!(sb.run(&conf, &["kill"]).status.code(), Some(0));
    assert!(!alive(supervisor));
    assert!(
        wait_until(10, || pids(&starts).iter().all(|p| !alive(*p))),
        "no Lisp left"
    );
}

/// A first start that fails is reported as for an unsupervised daemon.
#[test]
fn first_start_failure_is_reported() {
    let sb = Sandbox::new();
    let (conf, _) = conf(&sb, "bad", ":restart :always", "(error \"cannot start\")");
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - main-function-error (pid-file = {})",
            sb.pid_file("bad.pid").display()
        ),
    );
    assert!(
        stderr(&out).starts_with("ERROR: cannot start\n"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.pid_file("bad.pid").exists());
}

/// Rotation: a daemon printing fast into a 64K :output keeping 3 old files
/// leaves at most 4 files, none over the limit by more than a line, and
/// every line printed, whole.
#[test]
fn output_rotates_without_losing_lines() {
    let sb = Sandbox::new();
    let out = sb.path("out.log");
    let (conf, _) = conf(
        &sb,
        "talk",
        &format!(
            ":output {} :output-max-size \"64K\" :output-keep 3",
            lisp_string(out.to_str().unwrap())
        ),
        "(sb-thread:make-thread (lambda ()\n\
           (dotimes (i 3000) (format t \"line ~5,'0d ~a~%\" i (make-string 48 :initial-element #\\x)))\n\
           (finish-output)))",
    );
    let supervisor = pid_in(&stdout(&sb.run(&conf, &["start"]))).unwrap();
    let files = || -> Vec<std::path::PathBuf> {
        let mut files = vec![out.clone()];
        files.extend((1..=5).map(|n| sb.path(&format!("out.log.{n}"))));
        files.into_iter().filter(|f| f.exists()).collect()
    };
    let lines = || -> Vec<String> {
        files()
            .iter()
            .flat_map(|f| {
                // Rotation may rename it between the listing and the read.
                fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    // Every line once, seen between rotations (a count alone could see a
    // file twice, read before and after its rename).
    let numbers = || {
        let mut numbers: Vec<u32> = lines()
            .iter()
            .filter_map(|l| l.get(5..10)?.parse().ok())
            .collect();
        numbers.sort();
        numbers
    };
    assert!(
        wait_until(30, || numbers() == (0..3000).collect::<Vec<u32>>()),
        "{} lines",
        lines().len()
    );
    let files = files();
    assert!(files.len() <= 4, "{files:?}");
    assert!(!sb.path("out.log.4").exists());
    for file in &files {
        let size = fs::metadata(file).unwrap().len();
        assert!(size <= 64 * 1024 + 60, "{file:?} has {size} bytes");
    }
    for line in lines() {
        assert_eq!(line.len(), 59, "a whole line: {line:?}");
    }
    assert_eq!(
        numbers(),
        (0..3000).collect::<Vec<u32>>(),
        "every line once"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(supervisor));
}

/// SIGHUP to the supervisor after an outside rotation: the output goes to
/// a fresh file, and no line is lost or cut between the two.
#[test]
fn sighup_reopens_the_output() {
    let sb = Sandbox::new();
    let out = sb.path("hup.log");
    let (conf, _) = conf(
        &sb,
        "hup",
        &format!(
            ":output {} :restart :on-failure",
            lisp_string(out.to_str().unwrap())
        ),
        "(sb-thread:make-thread (lambda ()\n\
           (loop for i from 0 do (format t \"tick ~6,'0d~%\" i) (finish-output) (sleep 0.01))))",
    );
    let supervisor = pid_in(&stdout(&sb.run(&conf, &["start"]))).unwrap();
    let count = |p: &Path| {
        fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert!(wait_until(30, || count(&out) >= 5));
    let moved = sb.path("hup.log.moved");
    fs::rename(&out, &moved).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        wait_until(30, || count(&out) >= 5),
        "a fresh file after SIGHUP"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    let numbers: Vec<u32> = [moved, out]
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.starts_with("Stop hup daemon"))
        .map(|l| {
            assert!(
                l.len() == 11 && l.starts_with("tick "),
                "a whole line: {l:?}"
            );
            l[5..].parse().unwrap()
        })
        .collect();
    assert_eq!(
        numbers,
        (0..numbers.len() as u32).collect::<Vec<_>>(),
        "no line lost"
    );
}

/// A supervised first start whose Lisp dies without a report says how the
/// Lisp ended (not how its supervisor did), and leaves nothing behind.
#[test]
fn first_start_death_says_how_the_lisp_ended() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "d.conf",
        "(:pid-file \"d.pid\" :restart :always :main-function #.(lambda () (sb-ext:exit :code 9 :abort t)))",
    );
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - died (pid-file = {})",
            sb.pid_file("d.pid").display()
        ),
    );
    let err = stderr(&out);
    let rest = err
        .strip_prefix("ERROR: the Lisp (pid ")
        .unwrap_or_else(|| panic!("{err}"));
    let (pid, how) = rest.split_once(") ").unwrap();
    assert!(pid.parse::<i32>().is_ok(), "{err}");
    assert_eq!(how, "exited with status 9 before it was ready\n");
    let left: Vec<_> = fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("d.pid"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// What the Lisp's tree leaves behind is reparented to the supervisor (a
/// subreaper): when it ends it is reaped, so no zombie piles up under a
/// daemon that runs for months.
#[test]
fn orphans_of_the_lisp_are_reaped() {
    let sb = Sandbox::new();
    let done = sb.path("orphan-done");
    // sh leaves a child that outlives it (so it is reparented), and ends.
    let script = format!(
        "p=$$; (while kill -0 $p 2>/dev/null; do :; done; : > {}) & exit 0",
        done.display()
    );
    let (conf, _) = conf(
        &sb,
        "orphans",
        ":restart :on-failure",
        &format!(
            "(sb-ext:run-program \"/bin/sh\" (list \"-c\" {}) :wait t)",
            lisp_string(&script)
        ),
    );
    let supervisor = started_pid(&sb.run(&conf, &["start"]));
    sb.track(supervisor);
    assert!(wait_until(60, || done.exists()), "the orphan ran");
    let zombies = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                status.contains(&format!("\nPPid:\t{supervisor}\n"))
                    && status.contains("\nState:\tZ")
            })
            .count()
    };
    assert!(wait_until(30, || zombies() == 0), "a zombie stayed");
    let (lisp, _) = supervised(&sb, &conf);
    assert!(lisp > 0 && alive(lisp), "the Lisp serves on");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
