//! The Lisp API (`lisp/`, the ASDF system "daemonization") on real SBCL: a
//! fresh SBCL loads the system, drives the binary under test through
//! `daemonized`, and prints what it got back as `RECORD tag values` lines,
//! which are checked here.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// What one Lisp run printed.
struct LispRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl LispRun {
    /// The values of every `RECORD tag ...` line, in order.
    fn records(&self) -> Vec<(&str, &str)> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RECORD "))
            .map(|l| l.split_once(' ').unwrap_or((l, "")))
            .collect()
    }

    /// The values of the only record `tag`.
    #[track_caller]
    fn record(&self, tag: &str) -> &str {
        let found: Vec<&str> = self
            .records()
            .into_iter()
            .filter(|(t, _)| *t == tag)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "one record {tag}: {}", self.describe());
        found[0]
    }

    fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `program` in a fresh SBCL that has loaded the system from `lisp/`
/// (compiled into the sandbox), with the binary under test as the tool and
/// pid files and logs in the sandbox. `record` prints one line of values
/// (`~s`, lower case, newlines as `\n`); `*default-pathname-defaults*` is
/// the sandbox.
fn run_lisp(sb: &Sandbox, program: &str) -> LispRun {
    let lisp_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("lisp/");
    let dir = format!("{}/", sb.dir.path().display());
    let script = format!(
        "(require :asdf)\n\
         (push (pathname {lisp}) asdf:*central-registry*)\n\
         (asdf:initialize-output-translations\n \
           '(:output-translations (t ({fasl} :implementation)) :ignore-inherited-configuration))\n\
         (asdf:load-system \"daemonization\")\n\
         (use-package \"DAEMONIZATION\")\n\
         (setf *default-pathname-defaults* (pathname {dir}))\n\
         (defun record (tag &rest values)\n \
           (let ((text (let ((*print-case* :downcase) (*print-pretty* nil))\n \
                         (format nil \"~{{ ~s~}}\" values))))\n \
             (format t \"~&RECORD ~a~a~%\" tag\n \
                     (with-output-to-string (out)\n \
                       (loop for c across text\n \
                             do (if (char= c #\\Newline) (write-string \"\\\\n\" out) (write-char c out)))))\n \
             (finish-output)))\n\
         {program}\n",
        lisp = lisp_string(lisp_dir.to_str().unwrap()),
        fasl = lisp_string(&format!("{dir}fasl/")),
        dir = lisp_string(&dir),
    );
    let path = sb.path("test.lisp");
    fs::write(&path, script).unwrap();
    let (out, err) = (sb.path("lisp.out"), sb.path("lisp.err"));
    let mut child = Command::new("sbcl")
        .args([
            "--noinform",
            "--non-interactive",
            "--no-sysinit",
            "--no-userinit",
        ])
        .arg("--load")
        .arg(&path)
        .env("DAEMONIZATION_PROGRAM", bin())
        .env("DAEMONIZATION_PID_DIR", sb.dir.path())
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .env_remove("DAEMONIZATION_DEFAULT_CONF")
        .env_remove("LISP_RUNNER")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("run sbcl (install it: apt-get install sbcl)");
    let finished = wait_until(60, || child.try_wait().unwrap().is_some());
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let run = LispRun {
        code: status.code(),
        stdout: fs::read_to_string(&out).unwrap(),
        stderr: fs::read_to_string(&err).unwrap(),
    };
    // Whatever happened, every daemon it started is killed with the sandbox:
    // those it reported, and those whose pid file is left.
    for (tag, values) in run.records() {
        if ["start", "restart", "status"].contains(&tag)
            && let Some(pid) = pid_of(values)
        {
            sb.track(pid);
        }
    }
    for entry in fs::read_dir(sb.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pid")
            && let Ok(pid) = fs::read_to_string(&path).unwrap_or_default().trim().parse()
        {
            sb.track(pid);
        }
    }
    assert!(finished, "sbcl did not finish in 60 s: {}", run.describe());
    run
}

/// The `:pid N` of a result plist.
fn pid_of(values: &str) -> Option<i32> {
    let rest = &values[values.find(":pid ")? + 5..];
    rest.split([' ', ')']).next()?.parse().ok()
}

/// How `record` shows a string holding `line` and a newline.
fn printed_line(line: &str) -> String {
    let quoted = lisp_string(line);
    format!("{}\\n\"", &quoted[..quoted.len() - 1])
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name)
}

/// One expected successful result plist, as `record` prints it.
struct Expected<'a> {
    command: &'a str,
    status: &'a str,
    reason: &'a str,
    pid: Option<i32>,
    internal: u32,
    exit: u8,
    /// Whether the daemon is alive after the command (the extra status's user).
    alive: bool,
}

impl Expected<'_> {
    fn text(&self, pid_file: &str, user: &str) -> String {
        let pid = self.pid.map_or("nil".to_string(), |p| p.to_string());
        let user = if self.alive {
            lisp_string(user)
        } else {
            "nil".to_string()
        };
        let pf = lisp_string(pid_file);
        format!(
            "(:result \"success\" :command \"{}\" :status {} :reason {} :pid {pid} :pid-file {pf} \
             :internal-result (:status {} :extra-status #S(extra-status :pid {pid} :exit-code {} \
             :name \"lisp-api\" :pid-file {pf} :user {user})))",
            self.command, self.status, self.reason, self.internal, self.exit
        )
    }
}

/// The original's test sequence (start, status, stop, start, kill, start,
/// restart, stop) through `daemonized`, with a plist conf whose
/// :main-function is a function object (its source travels to the daemon):
/// each result plist, the line it printed, and the daemon's own work.
#[test]
fn original_sequence_through_daemonized() {
    let sb = Sandbox::new();
    let ran = sb.path("ran");
    let run = run_lisp(
        &sb,
        &format!(
            "(defvar *ran* {ran})\n\
             (defvar *conf*\n \
               (list :pid-file \"api.pid\" :name \"lisp-api\"\n \
                     :main-function (lambda ()\n \
                                      (with-open-file (out {ran} :direction :output :if-exists :supersede)\n \
                                        (format out \"~d\" (sb-unix:unix-getpid))))))\n\
             (defun run (command &rest options)\n \
               (when (probe-file *ran*) (delete-file *ran*))\n \
               (let* ((result nil)\n \
                      (printed (with-output-to-string (*standard-output*)\n \
                                 (let ((*print-case* :downcase) (*print-pretty* nil))\n \
                                   (setf result (apply #'daemonized *conf* command options))))))\n \
                 (record (string-downcase (string command)) result)\n \
                 (record \"printed\" printed)\n \
                 (record \"ran\" (and (probe-file *ran*) (with-open-file (in *ran*) (read-line in))))))\n\
             (run \"start\")\n\
             (run \"status\")\n\
             (run \"stop\")\n\
             (run \"status\")\n\
             (run \"start\")\n\
             (run :kill)\n\
             (run \"start\")\n\
             (run \"restart\")\n\
             (run \"status\" :print-result-type :plist)\n\
             (run 'stop :print-internal-result t)\n\
             (record \"log\" (length (get-daemon-log-list))\n \
                     (mapcar (lambda (r) (getf r :command)) (get-daemon-log-list)))\n",
            ran = lisp_string(ran.to_str().unwrap())
        ),
    );
    let records = run.records();
    let user = current_user();
    let pf = sb.pid_file("api.pid");
    let pf = pf.to_str().unwrap();
    assert_eq!(records.len(), 31, "{}", run.describe());
    let success = |command, pid, alive| Expected {
        command,
        status: "nil",
        reason: "nil",
        pid,
        internal: 0,
        exit: 0,
        alive,
    };
    let running = |pid| Expected {
        status: "\"running\"",
        internal: 0,
        ..success("status", pid, true)
    };
    let not_running = Expected {
        status: "\"not-running\"",
        reason: "\"no-pid-file\"",
        internal: 256,
        exit: 3,
        ..success("status", None, false)
    };
    let pid = |i: usize| pid_of(records[i * 3].1);
    let (p1, p2, p3, p4) = (pid(0), pid(4), pid(6), pid(7));
    assert!(p1.is_some() && p2.is_some() && p3.is_some() && p4.is_some());
    assert_ne!(p3, p4, "restart starts a new daemon");
    let expected = [
        (
            success("start", p1, true),
            format!("success started (pid = {} pid-file = {pf})", p1.unwrap()),
        ),
        (
            running(p1),
            format!("running (pid = {} pid-file = {pf})", p1.unwrap()),
        ),
        (
            success("stop", p1, false),
            format!("success stopped (pid = {} pid-file = {pf})", p1.unwrap()),
        ),
        (
            not_running,
            format!("not-running - no-pid-file (pid-file = {pf})"),
        ),
        (
            success("start", p2, true),
            format!("success started (pid = {} pid-file = {pf})", p2.unwrap()),
        ),
        (
            success("kill", p2, false),
            format!("success killed (pid = {} pid-file = {pf})", p2.unwrap()),
        ),
        (
            success("start", p3, true),
            format!("success started (pid = {} pid-file = {pf})", p3.unwrap()),
        ),
        (
            success("restart", p4, true),
            format!("success restarted (pid = {} pid-file = {pf})", p4.unwrap()),
        ),
        (running(p4), String::new()),
        (success("stop", p4, false), String::new()),
    ];
    for (i, (want, line)) in expected.iter().enumerate() {
        let (tag, values) = records[i * 3];
        assert_eq!(
            (tag, values),
            (want.command, want.text(pf, &user).as_str()),
            "step {i}"
        );
        let printed = match i {
            // :print-result-type :plist prints the result itself.
            8 => values.to_string(),
            // :print-internal-result t adds the internal result to the line.
            9 => {
                let internal = &values[values.find("(:status ").unwrap()..values.len() - 1];
                format!(
                    "success stopped (pid = {} pid-file = {pf}) internal-result - {internal}",
                    p4.unwrap()
                )
            }
            _ => line.clone(),
        };
        assert_eq!(
            records[i * 3 + 1],
            ("printed", printed_line(&printed).as_str()),
            "step {i}"
        );
        // The daemon wrote its own pid before start and restart returned.
        let ran = match (want.command, want.pid) {
            ("start" | "restart", Some(pid)) => lisp_string(&pid.to_string()),
            _ => "nil".to_string(),
        };
        assert_eq!(records[i * 3 + 2], ("ran", ran.as_str()), "step {i}");
    }
    for pid in [p1, p2, p3, p4] {
        assert!(!alive(pid.unwrap()), "daemon {pid:?} is gone");
    }
    assert!(!Path::new(pf).exists());
    assert_eq!(
        records[30],
        (
            "log",
            "10 (\"start\" \"status\" \"stop\" \"status\" \"start\" \"kill\" \"start\" \"restart\" \"status\" \"stop\")"
        )
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
}

/// `probe-conf-params` merges like the original: its own test's base conf
/// equals its result conf under `equal-conf-params`; plist confs, `#.`
/// read in the caller, and where things are.
#[test]
fn probe_conf_params_merges_like_the_original() {
    let sb = Sandbox::new();
    let tests = fixture("original-confs/tests");
    sb.conf(
        "hash-dot.conf",
        "(:main-function #.(lambda () 'from-hash-dot))",
    );
    let run = run_lisp(
        &sb,
        &format!(
            "(defun fixture (name) (concatenate 'string {tests} \"/\" name))\n\
             (defvar *expected* (with-open-file (in (fixture \"result-conf-params.conf\")) (read in)))\n\
             (defvar *merged* (probe-conf-params (fixture \"base-conf-params.conf\")))\n\
             (defvar *parent2* (probe-conf-params (pathname (fixture \"parent-conf-params2.conf\"))))\n\
             (record \"equal\" (equal-conf-params *merged* *expected*))\n\
             (record \"parent2-equal\" (equal-conf-params *parent2* *expected*))\n\
             (record \"merged-keys\" (loop for key in *merged* by #'cddr collect key))\n\
             (record \"conf-params-file\" (getf *merged* :conf-params-file))\n\
             (record \"parent2-functions\" (getf *parent2* :before-init-fn) (getf *parent2* :main-function))\n\
             (record \"order-ignored\" (equal-conf-params '(:a 1 :b \"x\" :conf-params-file \"p\") '(:b \"x\" :a 1))\n \
                     (equal-conf-params '(:a 1) '(:a 1 :b nil)) (equal-conf-params '(:a (1 2)) '(:a (1 3))))\n\
             (let ((plist (probe-conf-params '(:name \"plist\" :pid-file-dir \"pids\" :main-function (lambda () 1)))))\n \
               (record \"plist\" (getf plist :name) (getf plist :pid-file-dir) (getf plist :main-function)\n \
                       (getf plist :conf-params-file :absent)))\n\
             (let ((plist (probe-conf-params '(:pid-file-dir :this-dir :conf-params-file \"/srv/app/app.conf\"))))\n \
               (record \"this-dir\" (getf plist :pid-file-dir) (getf plist :conf-params-file)))\n\
             (let ((fn (getf (probe-conf-params \"hash-dot.conf\") :main-function)))\n \
               (record \"hash-dot\" (functionp fn) (funcall fn)))\n\
             (with-open-file (out \"my-default.conf\" :direction :output)\n \
               (write-string \"(:pid-file \\\"d.pid\\\" :name \\\"from-my-default\\\")\" out))\n\
             (with-open-file (out \"mine.conf\" :direction :output)\n \
               (write-string \"(:name \\\"from-mine\\\")\" out))\n\
             (record \"parent-here\" (getf (probe-conf-params '(:parent-conf-file \"mine.conf\" :pid-file \"x\")) :name))\n\
             (let ((*conf-files-dirname* \".\") (*default-conf-file-name* \"my-default.conf\"))\n \
               (record \"own-default\" (getf (probe-conf-params '(:pid-file \"x.pid\")) :name)))\n\
             (record \"commands\" +all-daemon-commands+)\n\
             (record \"keys\" +conf-parameters+)\n\
             (record \"dirs\" (namestring (get-pid-files-dir)) (namestring (get-conf-files-dir)) (get-default-conf-file))\n",
            tests = lisp_string(tests.to_str().unwrap())
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.record("equal"), "t");
    assert_eq!(run.record("parent2-equal"), "nil");
    assert_eq!(
        run.record("merged-keys"),
        "(:before-init-fn :before-parent-exit-fn :conf-params-file :exit :group \
         :listen-privileged-ports :main-function :name :os-params :parent-conf-file \
         :parent-conf-file-dir :pid-file :pid-file-dir :user)"
    );
    assert_eq!(
        run.record("conf-params-file"),
        lisp_string(tests.join("base-conf-params.conf").to_str().unwrap())
    );
    assert_eq!(
        run.record("parent2-functions"),
        "(function (lambda nil (print (quote hello)))) (function (lambda nil (quote sd)))"
    );
    assert_eq!(run.record("order-ignored"), "t nil nil");
    // A property list's own values are returned as given, as the
    // original merged the list itself.
    assert_eq!(
        run.record("plist"),
        "\"plist\" \"pids\" (lambda nil 1) :absent"
    );
    assert_eq!(run.record("this-dir"), ":this-dir \"/srv/app/app.conf\"");
    assert_eq!(run.record("hash-dot"), "t from-hash-dot");
    // A relative parent in the caller's directory is found there.
    assert_eq!(run.record("parent-here"), "\"from-mine\"");
    // *default-conf-file-name*, in a relative *conf-files-dirname*.
    assert_eq!(run.record("own-default"), "\"from-my-default\"");
    assert_eq!(
        run.record("commands"),
        "(\"start\" \"stop\" \"zap\" \"kill\" \"restart\" \"nodaemon\" \"status\")"
    );
    // +conf-parameters+ is the tool's own table of keys, in its order.
    let keys: Vec<String> = daemonization::config::keys::KEYS
        .iter()
        .map(|k| format!(":{}", k.name))
        .collect();
    assert_eq!(run.record("keys"), format!("({})", keys.join(" ")));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf-examples")
        .canonicalize()
        .unwrap();
    let dir = sb.dir.path().to_str().unwrap();
    assert_eq!(
        run.record("dirs"),
        format!(
            "\"{dir}/\" \"{e}/\" #P\"{e}/default.conf\"",
            e = examples.display()
        )
    );
    // The system compiles without warnings.
    assert!(
        !run.stdout.contains("WARNING") && !run.stderr.contains("WARNING"),
        "{}",
        run.describe()
    );
}

/// Each `on-error` mode on a broken conf, and what counts as an error: a
/// conf the tool rejects, a "failed" result, an unknown command, a function
/// whose source is lost, a tool that cannot run.
#[test]
fn on_error_modes() {
    let sb = Sandbox::new();
    sb.conf("broken.conf", "(:pid-file \"x\"\n");
    let run = run_lisp(
        &sb,
        "(defvar *bad* '(:pid-file \"bad.pid\" :bogus 1))\n\
         (defun described (c)\n \
           (list (type-of c) (princ-to-string c)\n \
                 (getf (daemonization-error-result c) :reason)\n \
                 (getf (getf (daemonization-error-result c) :internal-result) :status)))\n\
         (record \"call-error\"\n \
           (handler-case (progn (daemonized *bad* \"status\") :returned)\n \
             (daemonization-error (c) (described c))))\n\
         (let ((c (daemonized \"broken.conf\" \"start\" :on-error :return-error)))\n \
           (record \"return-error\" (described c)))\n\
         (let ((values (multiple-value-list (daemonized *bad* :status :on-error :as-ignore-errors))))\n \
           (record \"as-ignore-errors\" (length values) (first values) (type-of (second values))))\n\
         (defun returned (conf command)\n \
           (described (daemonized conf command :on-error :return-error :print-result-type :none)))\n\
         (record \"failed-result\" (returned '(:pid-file \"none.pid\") \"stop\"))\n\
         (record \"unknown-command\" (returned '(:pid-file \"none.pid\") \"frobnicate\"))\n\
         (record \"lost-source\"\n \
           (returned (list :main-function (compile nil '(lambda () (declare (optimize (debug 0))) 1))) \"start\"))\n\
         (record \"no-tool\" (let ((*daemonization-program* \"/nonexistent/daemonization\"))\n \
                              (returned '(:pid-file \"none.pid\") \"status\")))\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let dir = sb.dir.path().to_str().unwrap();
    // :call-error signals the tool's located message.
    let bad_key = "unknown key :BOGUS; every key: daemonization help keys";
    let call_error = run.record("call-error");
    assert!(
        call_error.starts_with(
            "(daemonization-error \"(the conf property list):2:2: unknown key :BOGUS; every key"
        ) && call_error.contains(bad_key)
            && call_error.ends_with("\\n2 |  :BOGUS 1)\\n  |  ^^^^^^\" \"internal-error\" 70)"),
        "{call_error}"
    );
    // :return-error returns the condition, and prints it.
    let broken = format!(
        "{dir}/broken.conf:1:1: expected \")\" to close the list opened at 1:1 but found end of file"
    );
    let return_error = run.record("return-error");
    assert!(
        return_error.starts_with(&format!(
            "(daemonization-error {}",
            &lisp_string(&broken)[..broken.len()]
        )) && return_error.ends_with("\"internal-error\" 70)"),
        "{return_error}"
    );
    assert!(
        run.stderr.contains(&format!("ERROR: {broken}\n")),
        "{}",
        run.describe()
    );
    assert!(!sb.path("x").exists());
    // :as-ignore-errors returns nil and the condition.
    assert_eq!(run.record("as-ignore-errors"), "2 nil daemonization-error");
    // A "failed" result is an error; its result plist comes with it.
    assert_eq!(
        run.record("failed-result"),
        format!(
            "(daemonization-error \"failed stopped - no-pid-file (pid-file = {dir}/none.pid)\" \
             \"no-pid-file\" 256)"
        )
    );
    assert_eq!(
        run.record("unknown-command"),
        "(daemonization-error \"unknown command \\\"frobnicate\\\": the command must be one of \
         (\\\"start\\\" \\\"stop\\\" \\\"zap\\\" \\\"kill\\\" \\\"restart\\\" \\\"nodaemon\\\" \\\"status\\\")\" \
         \"internal-error\" 70)"
    );
    let lost = run.record("lost-source");
    assert!(
        lost.contains("is a function whose source this Lisp cannot recover")
            && lost.contains("write the value as a lambda form"),
        "{lost}"
    );
    assert!(!sb.path("default-pid").exists(), "nothing was started");
    assert!(
        run.record("no-tool").starts_with(
            "(daemonization-error \"could not run the daemonization tool /nonexistent/daemonization: "
        ),
        "{}",
        run.describe()
    );
}

/// :exit-from-lisp prints the error and exits the Lisp with status 1: it
/// neither returns nor signals.
#[test]
fn exit_from_lisp_exits_with_status_1() {
    let sb = Sandbox::new();
    let run = run_lisp(
        &sb,
        "(handler-case (daemonized '(:pid-file \"bad.pid\" :bogus 1) \"status\" :on-error :exit-from-lisp)\n \
           (error (c) (record \"signalled\" (princ-to-string c)) (uiop:quit 3)))\n\
         (record \"returned\")\n\
         (uiop:quit 4)\n",
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.records().is_empty(), "{}", run.describe());
    assert!(
        run.stderr
            .contains("ERROR: (the conf property list):2:2: unknown key :BOGUS; every key"),
        "{}",
        run.describe()
    );
}

/// DAEMONIZATION-UTILS and DAEMON-SHARE, as the original's users read
/// them: this Lisp's pid and command line, a file made writable by all
/// (never a link's target), the status constants.
#[test]
fn the_originals_utility_packages() {
    use std::os::unix::fs::PermissionsExt as _;
    let sb = Sandbox::new();
    let target = sb.path("target");
    fs::write(&target, "root's").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&target, sb.path("link")).unwrap();
    let run = run_lisp(
        &sb,
        "(record \"pid\" (= (daemonization-utils:get-proc-id)\n \
                          (parse-integer (car (last (pathname-directory (truename \"/proc/self/\")))))))\n\
         (record \"args\" (stringp (first (daemonization-utils:get-args))))\n\
         (record \"new\" (daemonization-utils:recreate-file-allow-write-other \"made.log\"))\n\
         (record \"link\" (daemonization-utils:recreate-file-allow-write-other \"link\"))\n\
         (record \"constants\" daemon-share:+ex-ok+ daemon-share:+ex-general+ daemon-share:+ex-software+\n \
                 daemon-share:+ex-unavailable+ daemon-share:+ex-cantcreate+\n \
                 daemon-share:+pid-file-not-found+ daemon-share:+pid-file-exists+\n \
                 daemon-share:+process-not-exists+)\n\
         (record \"same-symbols\" (eq 'daemonization:extra-status-user 'daemon-share:extra-status-user))\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.record("pid"), "t");
    assert_eq!(run.record("args"), "t");
    assert_eq!(run.record("new"), "0");
    assert_eq!(
        fs::metadata(sb.path("made.log"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o666
    );
    assert_eq!(run.record("link"), "0");
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(run.record("constants"), "0 1 70 69 73 256 257 258");
    assert_eq!(run.record("same-symbols"), "t");
}
