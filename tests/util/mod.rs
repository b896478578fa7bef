//! Shared helpers for the integration tests: the real binary, temporary
//! directories, and real SBCL.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_daemonization")
}

/// `tests/fixtures/...`
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Runs the binary with `args`, with pid files kept under `pid_dir`.
pub fn run(pid_dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("DAEMONIZATION_PID_DIR", pid_dir)
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
