//! Shared helpers for the integration tests: the real binary, temporary
//! directories, and real SBCL.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_daemonization")
}

/// `path` (the binary, or a directory of the checkout) where every user
/// can read it: itself when every directory above it lets others in, else
/// a copy made once per test run in a directory of its own under the
/// system's temporary directory (a checkout in root's 0700 home cannot be
/// reached by the test user).
pub fn for_anyone(path: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let reachable = path.ancestors().skip(1).all(|dir| {
        dir.metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    });
    if reachable {
        return path.to_path_buf();
    }
    static COPIES: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let base = COPIES.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("daemonization-tests-shared-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    });
    let copy = base.path().join(path.file_name().unwrap());
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap();
    if !copy.exists() {
        let status = Command::new("cp")
            .args(["-R", "--preserve=mode"])
            .arg(path)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot copy {} for the test user",
            path.display()
        );
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&copy)
            .status()
            .unwrap();
    }
    copy
}

/// The binary under test, where another user can run it (`for_anyone`).
pub fn bin_for_anyone() -> PathBuf {
    for_anyone(Path::new(bin()))
}

/// `tests/fixtures/...`
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A logging conf in `dir` sending every line to `dir/daemonization.log`
/// (the tests' machines need not run a syslog daemon).
pub fn logging_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("logging.conf");
    if !conf.exists() {
        let mut text = String::from("(:files-dir :this-dir :admin-files-dir :this-dir");
        for role in ["", "admin-"] {
            for level in ["info", "error", "trace"] {
                text.push_str(&format!(
                    " :{role}{level}-destination \"daemonization.log\""
                ));
            }
        }
        text.push(')');
        std::fs::write(&conf, text).unwrap();
    }
    conf
}

/// Runs the binary with `args`, with pid files and logs kept under `pid_dir`.
pub fn run(pid_dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("DAEMONIZATION_PID_DIR", pid_dir)
        .env("LOGGING_CONF", logging_conf(pid_dir))
        .env_remove("DAEMONIZATION_DEFAULT_CONF")
        .output()
        .expect("run daemonization")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a Lisp program with `sbcl --script`, returning its output; panics
/// with the output when SBCL fails.
pub fn sbcl_script(dir: &Path, program: &str) -> String {
    let script = dir.join("test-script.lisp");
    std::fs::write(&script, program).unwrap();
    let out = Command::new("sbcl")
        .arg("--script")
        .arg(&script)
        .output()
        .expect("run sbcl (install it: apt-get install sbcl)");
    assert!(
        out.status.success(),
        "sbcl failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A Lisp string literal.
pub fn lisp_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Waits until `cond` holds, up to `secs` seconds; false on timeout.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sandbox others can enter (for daemons of the test user); root's.
pub fn open_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::set_permissions(
        sb.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sb
}

/// A test's own directory: pid files, confs and the files daemons write;
/// kills, by pid, every daemon it was told about when dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pids: std::cell::RefCell<Vec<std::os::fd::OwnedFd>>,
    /// The tool's cgroups the daemons were in (see `track`).
    cgroups: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
            pids: Default::default(),
            cgroups: Default::default(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a conf file and returns its path.
    pub fn conf(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A conf example from `conf-examples/`, with text replaced.
    pub fn example(&self, name: &str, replace: &[(&str, &str)]) -> PathBuf {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("conf-examples")
            .join(name);
        let mut text = std::fs::read_to_string(source).unwrap();
        for (from, to) in replace {
            assert!(text.contains(from), "{name} has no {from:?}");
            text = text.replace(from, to);
        }
        self.conf(name, &text)
    }

    /// Runs the binary with pid files in this sandbox; remembers any pid
    /// it prints, to kill it at the end.
    pub fn run(&self, conf: &Path, args: &[&str]) -> Output {
        self.run_with(conf, args, &[])
    }

    pub fn run_with(&self, conf: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(conf, args);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("run daemonization");
        for pid in daemons_in(&stdout(&out)) {
            self.track(pid);
        }
        out
    }

    /// Remembers `pid` to kill it when the sandbox is dropped, pinned by
    /// a pidfd now: a process that ended and whose pid was reused is never
    /// killed (nothing is pinned if it has already ended).
    pub fn track(&self, pid: i32) {
        if let Some(cgroup) = tools_cgroup(pid) {
            self.cgroups.borrow_mut().insert(cgroup);
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor that nothing else owns.
            let fd =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            self.pids.borrow_mut().push(fd);
        }
    }

    /// The shell command `inner` at a terminal of its own (script(1)
    /// makes one) in this sandbox's environment, in a process group of its
    /// own; its keyboard and screen as given, tracked. script(1) runs it
    /// with `$SHELL -c`: here always /bin/sh, whatever the tester's shell
    /// (begin `inner` with `exec` where a Ctrl-C is typed, or the shell
    /// waiting for the command ends with it).
    pub fn at_a_terminal(&self, inner: &str, keyboard: Stdio, screen: Stdio) -> Child {
        let script = Command::new("script")
            .args(["-qec", inner, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .env("DAEMONIZATION_PID_DIR", self.dir.path())
            .env("LOGGING_CONF", logging_conf(self.dir.path()))
            .stdin(keyboard)
            .stdout(screen)
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("script(1) runs (apt-get install bsdutils)");
        self.track(script.id() as i32);
        script
    }

    /// The log lines written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemonization.log")).unwrap_or_default()
    }

    /// A command for the binary, with this sandbox's environment.
    /// `command` as `user`, with a binary that user can run.
    pub fn command_as(&self, conf: &Path, args: &[&str], user: &nix::unistd::User) -> Command {
        let mut command = self.command_of(&bin_for_anyone(), conf, args);
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        command
    }

    /// The tool on `conf` with `args`, its pid directory this sandbox; no
    /// service manager's socket (the tests may run under one).
    pub fn command(&self, conf: &Path, args: &[&str]) -> Command {
        self.command_of(Path::new(bin()), conf, args)
    }

    fn command_of(&self, program: &Path, conf: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .arg(conf)
            .args(args)
            .env("DAEMONIZATION_PID_DIR", self.dir.path())
            .env("LOGGING_CONF", logging_conf(self.dir.path()))
            .env_remove("DAEMONIZATION_DEFAULT_CONF")
            .env_remove("LISP_RUNNER")
            .env_remove("NOTIFY_SOCKET");
        command
    }

    /// The pid file of a conf whose `:pid-file` is `name`.
    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.path(name)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for pidfd in self.pids.borrow().iter() {
            // SAFETY: pidfd_send_signal with our pidfd, SIGKILL, no info.
            unsafe {
                nix::libc::syscall(
                    nix::libc::SYS_pidfd_send_signal,
                    std::os::fd::AsRawFd::as_raw_fd(pidfd),
                    nix::libc::SIGKILL,
                    std::ptr::null::<u8>(),
                    0,
                );
            }
        }
        // The cgroups the tool made for them, once empty (a daemon killed
        // here, or one that ended by itself, leaves its own).
        for cgroup in self.cgroups.borrow().iter() {
            let empty = || {
                std::fs::read_to_string(cgroup.join("cgroup.events"))
                    .map_or(true, |e| e.lines().any(|l| l == "populated 0"))
            };
            if wait_until(10, empty) {
                if let Ok(entries) = std::fs::read_dir(cgroup) {
                    for entry in entries.flatten() {
                        if entry.file_type().is_ok_and(|t| t.is_dir()) {
                            let _ = std::fs::remove_dir(entry.path());
                        }
                    }
                }
                let _ = std::fs::remove_dir(cgroup);
            }
        }
    }
}

/// The cgroup the tool made for the daemon `pid` is in
/// (`HIERARCHY/daemonization/NAME`), if it is in one.
fn tools_cgroup(pid: i32) -> Option<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut parts = path.trim_start_matches('/').split('/');
    let (top, name) = (parts.next()?, parts.next()?);
    if top != "daemonization" || name.is_empty() {
        return None;
    }
    Some(cgroup_hierarchy()?.join(top).join(name))
}

/// Where this machine mounts the cgroup v2 hierarchy (a hybrid one's
/// under /sys/fs/cgroup/unified).
pub fn cgroup_hierarchy() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// The daemons a command's output reports as started or running, in any
/// print style (the plist's and JSON's `line` is the default line) and in
/// a directory's prefixed lines.
pub fn daemons_in(text: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for report in [
        "success started (pid = ",
        "success restarted (pid = ",
        "running (pid = ",
    ] {
        for (at, _) in text.match_indices(report) {
            let before = text[..at].chars().next_back();
            if matches!(before, None | Some('\n' | '"' | ' '))
                && let Some(pid) = pid_in(&text[at..])
            {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The pid in a result line: `... (pid = N ...`.
pub fn pid_in(line: &str) -> Option<i32> {
    let rest = &line[line.find("(pid = ")? + 7..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Asserts exit code and exact stdout line of a run.
#[track_caller]
pub fn assert_line(out: &Output, code: i32, line: &str) {
    assert_eq!(
        (out.status.code(), stdout(out).as_str()),
        (Some(code), format!("{line}\n").as_str()),
        "stderr: {}",
        stderr(out)
    );
}

/// Whether the tests run as root (CI does); privilege tests need it.
pub fn root() -> bool {
    nix::unistd::getuid().is_root()
}

/// The one skip policy: a test that cannot run here fails, saying what it
/// needs and how to get it (`scripts/test-deps.sh` installs all of it).
pub fn needs(what: &str, present: bool, how: &str) {
    assert!(
        present,
        "this test needs {what}: {how} (as root, scripts/test-deps.sh installs everything the tests need)"
    );
}

/// Fails the test unless it runs as root.
pub fn needs_root() {
    needs(
        "root",
        root(),
        "run the tests as root (they create the test user dztest)",
    );
}

/// Fails the test unless `program` runs (`program --version`).
pub fn needs_program(program: &str, package: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    needs(program, found, &format!("apt-get install {package}"));
}

/// The test user `dztest` (home /home/dztest) with the supplementary group
/// `dztestextra`, created once if missing. Needs root.
pub fn test_user() -> nix::unistd::User {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        if nix::unistd::User::from_name("dztest").unwrap().is_none() {
            let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
            ok(Command::new("groupadd").args(["-f", "dztestextra"]));
            ok(Command::new("useradd").args([
                "--create-home",
                "--user-group",
                "--groups",
                "dztestextra",
                "dztest",
            ]));
        }
    });
    nix::unistd::User::from_name("dztest")
        .unwrap()
        .expect("dztest exists")
}

/// The system user `dzsystem`, made as `useradd --system` makes one (home
/// /nonexistent, not created), once if missing. Needs root.
pub fn system_user() -> nix::unistd::User {
    needs_root();
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        if nix::unistd::User::from_name("dzsystem").unwrap().is_none() {
            let status = Command::new("useradd")
                .args(["--system", "--home-dir", "/nonexistent", "--no-create-home"])
                .args(["--shell", "/usr/sbin/nologin", "dzsystem"])
                .status()
                .unwrap();
            assert!(status.success(), "useradd dzsystem");
        }
    });
    nix::unistd::User::from_name("dzsystem")
        .unwrap()
        .expect("dzsystem exists")
}

/// A field of /proc/PID/status, e.g. `Uid`.
pub fn proc_status(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// The pid in a start line; panics with the output if there is none.
pub fn started_pid(out: &Output) -> i32 {
    pid_in(&stdout(out))
        .unwrap_or_else(|| panic!("no pid in {:?} / {:?}", stdout(out), stderr(out)))
}

/// Sends one request to a swank server on the wire (6 hex digits of
/// length, then the form) and returns the text of its `:return` reply.
pub fn swank(port: u16, form: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("swank answers");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(format!("{:06x}{form}", form.len()).as_bytes())
        .unwrap();
    loop {
        let mut header = [0u8; 6];
        stream.read_exact(&mut header).unwrap();
        let len = usize::from_str_radix(std::str::from_utf8(&header).unwrap(), 16).unwrap();
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).unwrap();
        let body = String::from_utf8(body).unwrap();
        if body.starts_with("(:return") {
            return body;
        }
    }
}

/// A heartbeat daemon from the example, writing into the sandbox: its conf
/// and the file it beats into.
pub fn heartbeat(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let log = sb.path("heartbeat.log");
    let conf = sb.example(
        "heartbeat.conf",
        &[("/tmp/daemonization-heartbeat.log", log.to_str().unwrap())],
    );
    (conf, log)
}

/// A heartbeat daemon on `lisp` (`sbcl`, `ecl`, `clisp`): its conf and the
/// file it beats into (every 0.2 s where the Lisp has threads).
pub fn lisp_heartbeat(sb: &Sandbox, lisp: &str) -> (PathBuf, PathBuf) {
    let log = sb.path(&format!("{lisp}.beats"));
    let conf = sb.conf(
        &format!("{lisp}.conf"),
        &format!(
            "(:pid-file \"{lisp}.pid\" :name \"{lisp}-heartbeat\" :lisp :{lisp}\n \
             :main-function #.(lambda ()\n\
               (flet ((beat () (with-open-file (s {log} :direction :output :if-exists :append\n\
                                                    :if-does-not-exist :create)\n\
                                 (format s \"beat~%\"))))\n\
                 (beat)\n\
                 #+sbcl (sb-thread:make-thread (lambda () (loop (sleep 0.2) (beat))))\n\
                 #+ecl (mp:process-run-function \"beat\" (lambda () (loop (sleep 0.2) (beat)))))))",
            log = lisp_string(log.to_str().unwrap())
        ),
    );
    (conf, log)
}

/// The number of lines in a file (0 if it cannot be read).
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Whether process `pid` holds a POSIX lock on the file at `path` (from
/// /proc/locks: `ID: POSIX ADVISORY MODE PID MAJ:MIN:INODE ...`).
pub fn holds_lock(pid: i32, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"POSIX")
            && fields.get(4) == Some(&pid.to_string().as_str())
            && fields
                .get(5)
                .is_some_and(|f| f.ends_with(&format!(":{}", meta.ino())))
    })
}

/// Whether the kernel sends a signal to one thread of a pidfd's process
/// (`PIDFD_SIGNAL_THREAD`, Linux 6.9): the tool's stop reaches SBCL's main
/// thread only there.
pub fn kernel_signals_threads() -> bool {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: pidfd_open of our own pid; no memory passed.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, std::process::id(), 0) };
    assert!(fd >= 0, "pidfd_open");
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Signal 0 (none): only the flag is checked.
    // SAFETY: a valid pidfd, no siginfo, a flag.
    unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            0,
            0usize,
            1u32,
        ) == 0
    }
}

/// A tmpfs mounted for one test, lazily unmounted when dropped (the
/// daemon's files may still be open then).
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` (mount's `size=`, e.g. `1m`) mounted at `dir`.
    pub fn at(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("mode=0755,size={size}"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    pub fn remount(&self, how: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {} {how}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A command at a terminal of its own (script(1) makes one), spawned with
/// its stdin and stdout piped: what it shows, read as it comes, and a
/// keyboard.
pub struct Terminal {
    script: std::process::Child,
    keyboard: std::process::ChildStdin,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    at: usize,
}

impl Terminal {
    pub fn of(mut script: std::process::Child) -> Terminal {
        use std::io::Read as _;
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let (screen, mut out) = (
                std::sync::Arc::clone(&screen),
                script.stdout.take().expect("stdout piped"),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    screen
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        let keyboard = script.stdin.take().expect("stdin piped");
        Terminal {
            script,
            keyboard,
            screen,
            reader: Some(reader),
            at: 0,
        }
    }

    pub fn type_in(&mut self, keys: &str) {
        use std::io::Write as _;
        self.keyboard.write_all(keys.as_bytes()).unwrap();
        self.keyboard.flush().unwrap();
    }

    /// Waits until `text` is shown after what was seen before.
    pub fn seen(&mut self, text: &str) {
        let at = self.at;
        let found = wait_until(30, || self.screen.lock().unwrap()[at..].contains(text));
        let screen = self.screen.lock().unwrap();
        assert!(found, "the terminal did not show {text:?}: {screen}");
        self.at += screen[at..].find(text).unwrap() + text.len();
    }

    /// Waits for the command to end; its exit code.
    pub fn end(mut self) -> Option<i32> {
        assert!(
            wait_until(30, || self.script.try_wait().unwrap().is_some()),
            "the command ended"
        );
        self.reader.take().unwrap().join().unwrap();
        self.script.wait().unwrap().code()
    }
}
