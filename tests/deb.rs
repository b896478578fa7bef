//! The Debian package, as installed (`.ci/run` builds it with `cargo deb`
//! and installs it with `dpkg -i` before the tests): the installed binary
//! starts a daemon, the installed Lisp API loads for any user, and the man
//! page and completions are where `man` and bash-completion find them.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Fails the test unless the package is installed.
fn needs_the_package() {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "daemonization"])
        .output();
    let found = out.is_ok_and(|o| stdout(&o).starts_with("install ok installed "));
    needs(
        "the daemonization package installed",
        found,
        "cargo install cargo-deb; dpkg -i \"$(cargo deb | tail -n 1)\"",
    );
}

/// The installed binary, on PATH, runs a daemon of a conf.
#[test]
fn the_installed_tool_starts_a_daemon() {
    needs_the_package();
    let version = Command::new("daemonization")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&version),
        format!("daemonization {}\n", env!("CARGO_PKG_VERSION"))
    );
    let sb = Sandbox::new();
    let conf = sb.conf(
        "pkg.conf",
        "(:pid-file \"pkg.pid\" :main-function #.(lambda () t))",
    );
    let run = |command: &str| {
        Command::new("/usr/bin/daemonization")
            .arg(&conf)
            .arg(command)
            .env("DAEMONIZATION_PID_DIR", sb.dir.path())
            .env("LOGGING_CONF", logging_conf(sb.dir.path()))
            .output()
            .unwrap()
    };
    let out = run("start");
    let pid = pid_in(&stdout(&out)).unwrap_or_else(|| panic!("{} {}", stdout(&out), stderr(&out)));
    sb.track(pid);
    assert_eq!(run("status").status.code(), Some(0));
    assert_eq!(run("stop").status.code(), Some(0));
    assert!(!alive(pid));
}

/// `(asdf:load-system :daemonization)` works with Debian's ASDF, from the
/// package's systems directory, and drives the installed tool.
#[test]
fn the_installed_lisp_api_loads() {
    needs_the_package();
    let sb = Sandbox::new();
    let conf = sb.conf("api.conf", "(:pid-file \"api.pid\")");
    let out = Command::new("sbcl")
        .args(["--noinform", "--non-interactive", "--no-sysinit", "--no-userinit"])
        .args(["--eval", "(require :asdf)"])
        .args(["--eval", "(asdf:load-system :daemonization)"])
        .args([
            "--eval",
            &format!(
                "(let ((*print-pretty* nil)) (print (list (namestring (asdf:system-source-directory :daemonization))\n \
                                     (namestring (daemonization::find-program))\n \
                                     (getf (daemonization:daemonized {} \"status\" :print-result-type :none\n \
                                                                     :on-error :return-error)\n \
                                           :status)))\n \
                        (terpri))",
                lisp_string(conf.to_str().unwrap())
            ),
        ])
        .env("XDG_CACHE_HOME", sb.path("cache"))
        .env("DAEMONIZATION_PID_DIR", sb.dir.path())
        .env("LOGGING_CONF", logging_conf(sb.dir.path()))
        .env_remove("DAEMONIZATION_PROGRAM")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "(\"/usr/share/common-lisp/source/daemonization/lisp/\" \"/usr/bin/daemonization\" \"not-running\")"
        ),
        "{}",
        stdout(&out)
    );
}

/// The man page and the completions are where their tools look, and are
/// those of this tool; `completions SHELL` prints the same scripts.
#[test]
fn the_man_page_and_completions_are_found() {
    needs_the_package();
    // Compressed, as Debian's policy says; the tool's own pages (doc/).
    for (name, installed, source) in [
        (
            "daemonization",
            "/usr/share/man/man1/daemonization.1.gz",
            "doc/daemonization.1",
        ),
        (
            "daemonization.conf",
            "/usr/share/man/man5/daemonization.conf.5.gz",
            "doc/daemonization.conf.5",
        ),
    ] {
        let man = Command::new("man").args(["-w", name]).output().unwrap();
        assert_eq!(stdout(&man).trim(), installed);
        let page = Command::new("zcat").arg(installed).output().unwrap();
        let ours = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(source)).unwrap();
        assert_eq!(stdout(&page), ours, "{installed}");
    }
    // bash-completion loads it on demand, by the command's name.
    let out = Command::new("bash")
        .args([
            "-c",
            "source /usr/share/bash-completion/bash_completion && \
             _completion_loader daemonization; complete -p daemonization",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("_daemonization") && stdout(&out).ends_with("daemonization\n"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    // It completes the command words.
    let out = Command::new("bash")
        .args([
            "-c",
            "source /usr/share/bash-completion/bash_completion && \
             _completion_loader daemonization; COMP_WORDS=(daemonization site.conf st); \
             COMP_CWORD=2; COMP_LINE='daemonization site.conf st'; COMP_POINT=${#COMP_LINE}; \
             _daemonization daemonization st site.conf; echo \"${COMPREPLY[@]}\"",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "start stop status\n", "{}", stderr(&out));
    for (shell, path) in [
        (
            "bash",
            "/usr/share/bash-completion/completions/daemonization",
        ),
        ("zsh", "/usr/share/zsh/vendor-completions/_daemonization"),
        (
            "fish",
            "/usr/share/fish/vendor_completions.d/daemonization.fish",
        ),
    ] {
        let printed = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(
            stdout(&printed),
            fs::read_to_string(path).unwrap(),
            "{shell}"
        );
    }
}
