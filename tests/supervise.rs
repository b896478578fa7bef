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

/// A memory cgroup of the test's with a limit, v2's where the unified
/// hierarchy has the memory controller, else v1's (a hybrid hierarchy);
/// what is left in it is killed and it is removed when dropped.
struct MemoryCgroup {
    dir: std::path::PathBuf,
}

impl MemoryCgroup {
    fn with_limit(bytes: u64) -> MemoryCgroup {
        needs_root();
        let name = format!("dz-oom-{}", std::process::id());
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = |kind: &str, option: &str| {
            mounts.lines().find_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let right: Vec<&str> = right.split_whitespace().collect();
                let point = left.split_whitespace().nth(4)?;
                (right[0] == kind
                    && right[2]
                        .split(',')
                        .any(|o| o == option || option.is_empty()))
                .then(|| std::path::PathBuf::from(point))
            })
        };
        let v2 = mount("cgroup2", "").filter(|top| {
            fs::read_to_string(top.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
        });
        let set = |dir: &Path, file: &str, value: &str| fs::write(dir.join(file), value);
        if let Some(top) = v2 {
            let _ = set(&top, "cgroup.subtree_control", "+memory");
            let dir = top.join(name);
            fs::create_dir(&dir).unwrap();
            set(&dir, "memory.max", &bytes.to_string()).unwrap();
            let _ = set(&dir, "memory.swap.max", "0");
            return MemoryCgroup { dir };
        }
        let v1 = mount("cgroup", "memory");
        needs(
            "a memory cgroup controller (cgroup v2 with memory, or v1's memory hierarchy)",
            v1.is_some(),
            "boot with the memory controller enabled (cgroup_enable=memory)",
        );
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = own
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then_some(path)
            })
            .unwrap();
        let dir = v1.unwrap().join(path.trim_start_matches('/')).join(name);
        fs::create_dir(&dir).unwrap();
        set(&dir, "memory.limit_in_bytes", &bytes.to_string()).unwrap();
        let _ = set(&dir, "memory.memsw.limit_in_bytes", &bytes.to_string());
        MemoryCgroup { dir }
    }

    /// A shell line that moves the shell into this cgroup (as root).
    fn enter(&self) -> String {
        format!("echo $$ > '{}/cgroup.procs'", self.dir.display())
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let members = || fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in members().lines().filter_map(|l| l.trim().parse().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(10, || members().trim().is_empty());
        let _ = fs::remove_dir(&self.dir);
    }
}

/// A supervised Lisp killed by the kernel's OOM killer (its memory cgroup
/// at its limit): the supervisor's record and `status` name the OOM
/// killer, not only "killed by SIGKILL"; as likely, naming the cgroup,
/// since the tool cannot know that cgroup (which it inherited) holds only
/// this daemon. Run as the test user (its supervisor has no cgroup of the
/// tool's, so it stays in the test's memory cgroup).
#[test]
fn the_oom_killer_is_named() {
    needs_root();
    let user = test_user();
    let memory = MemoryCgroup::with_limit(256 * 1024 * 1024);
    let sb = open_sandbox();
    let pids = sb.path("user");
    fs::create_dir(&pids).unwrap();
    std::os::unix::fs::chown(&pids, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
    let go = pids.join("go");
    let conf = sb.conf(
        "oom.conf",
        &format!(
            "(:pid-file \"oom.pid\" :name \"oom\" :dynamic-space-size 4096\n\
             :restart :on-failure :start-limit (1 60)\n\
             :main-function #.(lambda ()\n\
               (sb-thread:make-thread (lambda ()\n\
                 (loop until (probe-file {}) do (sleep 0.02))\n\
                 (loop collect (make-array (* 8 1024 1024) :element-type '(unsigned-byte 8) :initial-element 1)))\n\
                :name \"hog\") t))",
            lisp_string(go.to_str().unwrap())
        ),
    );
    let as_user = |args: &[&str]| {
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "{} && exec setpriv --reuid={} --regid={} --init-groups \"$@\"",
                memory.enter(),
                user.uid,
                user.gid
            ))
            .arg("sh")
            .arg(bin_for_anyone())
            .arg(&conf)
            .args(args)
            .env("DAEMONIZATION_PID_DIR", &pids)
            .env("LOGGING_CONF", logging_conf(&pids))
            .env_remove("NOTIFY_SOCKET");
        let out = command.output().unwrap();
        for pid in daemons_in(&stdout(&out)) {
            sb.track(pid);
        }
        out
    };
    let supervisor = started_pid(&as_user(&["start"]));
    fs::write(&go, "").unwrap();
    assert!(wait_until(60, || !alive(supervisor)), "gave up");
    let out = as_user(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: the supervisor gave up at :start-limit; the Lisp was killed by SIGKILL, most \
             likely by the kernel's OOM killer (out of memory): its memory cgroup {}, which it \
             shares with other processes, counted an OOM kill. Fix it and start it again (zap or \
             stop clears this record)\n",
            memory.dir.display()
        )
    );
    assert_eq!(as_user(&["zap"]).status.code(), Some(0));
}
