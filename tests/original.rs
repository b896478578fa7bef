//! The original library's own test suite, `tests.lisp` (unchanged, in
//! `fixtures/original-tests/`), against this tool's Lisp API: `run-tests`
//! as a user and `root-run-tests USER` as root, ten times in a row each,
//! in one fresh SBCL per mode. The original itself passed 9 of 12 runs
//! (it is flaky at start-after-kill); every run must pass here.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

const RUNS: usize = 10;

/// The test system laid out as `tests.lisp` expects: `SYSTEM/tests/` holds
/// it and the conf files it reads; our `daemonization-test.asd` beside.
fn test_system(sb: &Sandbox) -> std::path::PathBuf {
    let system = sb.path("system");
    let tests = system.join("tests");
    fs::create_dir_all(&tests).unwrap();
    let copy = |from: &Path, to: &Path| {
        fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    let original = fixture("original-tests");
    copy(
        &original.join("daemonization-test.asd"),
        &system.join("daemonization-test.asd"),
    );
    copy(&original.join("tests.lisp"), &tests.join("tests.lisp"));
    for conf in fs::read_dir(fixture("original-confs/tests")).unwrap() {
        let conf = conf.unwrap().path();
        copy(&conf, &tests.join(conf.file_name().unwrap()));
    }
    system
}

/// Runs `form` RUNS times in a fresh SBCL that loaded the test system, as
/// `user` (None: the caller), from the test system's directory (a relative
/// `*conf-files-dirname*`, "tests", is relative to it). Returns its output.
fn run_original(sb: &Sandbox, form: &str, user: Option<&nix::unistd::User>) -> String {
    let system = test_system(sb);
    let pids = sb.path("pids");
    fs::create_dir_all(&pids).unwrap();
    if let Some(user) = user {
        chown_tree(sb.dir.path(), user);
    }
    let lisp_dir = for_anyone(&Path::new(env!("CARGO_MANIFEST_DIR")).join("lisp"));
    let lisp_dir = format!("{}/", lisp_dir.display());
    let script = sb.path("run.lisp");
    fs::write(
        &script,
        format!(
            "(require :asdf)\n\
             (asdf:initialize-source-registry\n \
               '(:source-registry (:directory {lisp}) (:directory {system}) :ignore-inherited-configuration))\n\
             (asdf:initialize-output-translations\n \
               '(:output-translations (t ({fasl} :implementation)) :ignore-inherited-configuration))\n\
             (asdf:load-system \"daemonization-test\")\n\
             (dotimes (i {RUNS}) {form})\n",
            lisp = lisp_string(&lisp_dir),
            system = lisp_string(&format!("{}/", system.display())),
            fasl = lisp_string(&format!("{}/fasl/", sb.dir.path().display())),
        ),
    )
    .unwrap();
    if let Some(user) = user {
        chown_tree(sb.dir.path(), user);
    }
    let output = sb.path("sbcl.out");
    let mut command = Command::new("sbcl");
    command
        .args([
            "--noinform",
            "--non-interactive",
            "--no-sysinit",
            "--no-userinit",
            "--load",
        ])
        .arg(&script)
        .current_dir(&system)
        .env("DAEMONIZATION_PROGRAM", bin_for_anyone())
        .env("DAEMONIZATION_PID_DIR", &pids)
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .env("XDG_CACHE_HOME", sb.path("cache"))
        .env_remove("DAEMONIZATION_DEFAULT_CONF")
        .env_remove("LISP_RUNNER")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&output).unwrap())
        .stderr(Stdio::piped());
    if let Some(user) = user {
        command
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env("HOME", sb.dir.path());
    }
    let mut child = command.spawn().expect("run sbcl");
    let finished = wait_until(300, || child.try_wait().unwrap().is_some());
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    // Whatever happened, a daemon whose pid file is left is killed.
    for entry in fs::read_dir(&pids).unwrap() {
        if let Ok(text) = fs::read_to_string(entry.unwrap().path())
            && let Ok(pid) = text.trim().parse()
        {
            sb.track(pid);
        }
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let stdout = fs::read_to_string(&output).unwrap();
    assert!(
        finished && status.success(),
        "sbcl: {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn chown_tree(path: &Path, user: &nix::unistd::User) {
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), user);
        }
    }
}

/// Every run printed its start line and "Tests passed.", none "failed".
#[track_caller]
fn assert_passed(output: &str, start: &str) {
    let count = |needle: &str| output.matches(needle).count();
    assert_eq!(
        (
            count(start),
            count(" ... Tests passed."),
            count("Tests failed"),
            count("ERROR")
        ),
        (RUNS, RUNS, 0, 0),
        "{output}"
    );
}

/// `(run-tests)` as a user: the conf merge of the original's own test
/// confs, then start, stop, start, kill, start, restart, stop, each
/// checked with `status`'s internal result.
#[test]
fn the_original_tests_pass_as_a_user() {
    let sb = open_sandbox();
    let user = root().then(test_user);
    let output = run_original(&sb, "(daemonization-test:run-tests)", user.as_ref());
    assert_passed(&output, "Tests daemonized ... ");
    assert!(output.contains("try test handling of the configuration ... OK"));
    assert!(output.contains("success killed (pid = "), "{output}");
}

/// `(root-run-tests USER)` as root: the same, then a daemon that runs as
/// USER, which `status` reports.
#[test]
fn the_original_tests_pass_as_root_with_a_user() {
    assert!(
        root(),
        "root-run-tests switches users: run the suite as root (CI does)"
    );
    let sb = Sandbox::new();
    let user = test_user();
    let output = run_original(
        &sb,
        &format!(
            "(daemonization-test:root-run-tests {})",
            lisp_string(&user.name)
        ),
        None,
    );
    assert_passed(&output, "Tests daemonized (with changing user) ... ");
    assert_eq!(
        output.matches("--- Try is changing of user ---").count(),
        RUNS
    );
}
