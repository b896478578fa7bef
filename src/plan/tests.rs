//! Launch plans, checked by equality: no process is started here.

use std::path::PathBuf;

use super::*;
use crate::config::FunctionShape;
use crate::logging::{Destination, Destinations};

fn log() -> Destinations {
    Destinations {
        info: Destination::Syslog,
        error: Destination::File(PathBuf::from("/var/log/d.log")),
        trace: Destination::Nowhere,
    }
}

/// The plan of a daemon with no switch of user, for a caller with no
/// environment and no directory.
fn simple_plan(spec: &DaemonSpec, runner: &Runner, mode: &Mode) -> LaunchPlan {
    plan(spec, runner, mode, None, &log(), &Caller::default())
}

fn code(text: &str) -> Option<LispCode> {
    Some(LispCode {
        text: text.to_string(),
        shape: FunctionShape::ReadEval,
        origin: (PathBuf::from("/c.conf"), 1, 1),
    })
}

fn spec() -> DaemonSpec {
    DaemonSpec {
        name: Some("web \"1\"".into()),
        main_function: code("#.(lambda () (asdf:load-system :swank))"),
        before_init_fn: code("#'(lambda () (print \"init\"))"),
        before_parent_exit_fn: code("(lambda (pid status) (print (list pid status)))"),
        ..DaemonSpec::default()
    }
}

#[test]
fn daemon_plan_keeps_code_out_of_argv() {
    let plan = plan(
        &spec(),
        &Runner::from_env_value(None),
        &Mode::Daemon,
        None,
        &log(),
        &Caller {
            env: Vec::new(),
            dir: Some(PathBuf::from("/home/me/site")),
        },
    );
    assert_eq!(plan.program, OsString::from("sbcl"));
    assert_eq!(
        plan.args,
        [
            "--noinform",
            "--disable-ldb",
            "--lose-on-corruption",
            "--disable-debugger",
            "--load",
            "/dev/fd/3"
        ]
    );
    assert!(
        plan.env.is_empty(),
        "no caller environment given, none made up"
    );
    let header = "(defpackage \"DAEMONIZATION-BOOTSTRAP\" (:use \"COMMON-LISP\"))\n\
                  (in-package \"DAEMONIZATION-BOOTSTRAP\")\n\
                  (defparameter *name* \"web \\\"1\\\"\")\n\
                  (defparameter *mode* :daemon)\n\
                  (defparameter *ready-fd* 4)\n\
                  (defparameter *close-fds* '(3 5))\n\
                  (defparameter *required-modules* '(\"ASDF\"))\n\
                  (defparameter *before-init-fn* \"#'(lambda () (print \\\"init\\\"))\")\n\
                  (defparameter *main-function* \"#.(lambda () (asdf:load-system :swank))\")\n\
                  (defparameter *args* 'nil)\n\
                  (defparameter *log-info* :syslog)\n\
                  (defparameter *log-error* \"/var/log/d.log\")\n\
                  (defparameter *fasl-dir* nil)\n\
                  (defparameter *directory* \"/home/me/site/\")\n\
                  (defparameter *reload-function* nil)\n\
                  (defparameter *reload-fd* nil)\n\
                  (defparameter *preload* '())\n\
                  (defparameter *from-core* nil)\n\
                  (defparameter *core-file* nil)\n\
                  (defparameter *ready-mode* :returned)\n\
                  (defparameter *listeners* '())\n\
                  (defparameter *conf-stop-function* nil)\n\
                  (defparameter *cause-fd* nil)\n\
                  (defparameter *control-dir* nil)\n\
                  (defparameter *watchdog-check* nil)\n\
                  (defparameter *messages* t)\n\
                  (defparameter *output-file* nil)\n";
    assert_eq!(
        plan.bootstrap,
        format!(
            "{header}{}{PRELUDE_COMMON}{BOOTSTRAP}",
            LispKind::Sbcl.facts().prelude
        )
    );
}

#[test]
fn runner_comes_from_lisp_runner() {
    let plan = simple_plan(
        &spec(),
        &Runner::from_env_value(Some("/opt/sbcl/bin/sbcl".into())),
        &Mode::Foreground {
            report_ready: false,
        },
    );
    assert_eq!(plan.program, OsString::from("/opt/sbcl/bin/sbcl"));
    assert!(plan.bootstrap.contains("(defparameter *mode* :foreground)\n(defparameter *ready-fd* nil)\n(defparameter *close-fds* '(3))\n"));
    let empty = Runner::from_env_value(Some("".into()));
    assert_eq!(empty.program, OsString::from("sbcl"));
}

#[test]
fn parent_exit_plan_calls_only_that_function() {
    let plan = simple_plan(
        &spec(),
        &Runner::sbcl("sbcl"),
        &Mode::ParentExit {
            pid: 42,
            status: 10,
        },
    );
    assert!(plan.bootstrap.contains(
        "(defparameter *mode* :call)\n(defparameter *ready-fd* nil)\n(defparameter *close-fds* 'nil)\n\
         (defparameter *required-modules* '())\n(defparameter *before-init-fn* nil)\n\
         (defparameter *main-function* \"(lambda (pid status) (print (list pid status)))\")\n\
         (defparameter *args* '(42 10))\n"
    ));
}

#[test]
fn modules_are_found_by_name() {
    assert_eq!(
        modules_named(["(sb-posix:getpid)", "(find-symbol \"X\" :UIOP)"]),
        ["SB-POSIX", "ASDF"]
    );
    assert!(modules_named(["(lambda () (print 1))"]).is_empty());
}

#[test]
fn lisp_programs_are_recognised() {
    assert!(is_lisp_program(std::path::Path::new("/usr/bin/sbcl")));
    assert!(is_lisp_program(std::path::Path::new("sbcl")));
    assert!(!is_lisp_program(std::path::Path::new("/bin/sleep")));
}

fn env(vars: &[(&str, &str)]) -> Env {
    vars.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn a_switch_builds_the_users_environment() {
    let switch = Switch {
        account: Account {
            name: "dztest".into(),
            uid: 1001,
            gid: 1001,
            home: "/home/dztest".into(),
            shell: "/bin/sh".into(),
        },
        keep_bind: true,
    };
    let caller = env(&[
        ("HOME", "/root"),
        ("PATH", "/root/bin:/usr/bin"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ("LANG", "C.UTF-8"),
        ("LC_TIME", "de_DE.UTF-8"),
        ("TZ", "UTC"),
        ("TERM", "xterm"),
        ("SBCL_HOME", "/usr/lib/sbcl"),
        ("ECLDIR", "/usr/lib/ecl"),
        ("LD_PRELOAD", "/tmp/evil.so"),
    ]);
    let plan = plan(
        &spec(),
        &Runner::sbcl("sbcl"),
        &Mode::Daemon,
        Some(&switch),
        &log(),
        &Caller {
            env: caller.clone(),
            dir: None,
        },
    );
    let expected = env(&[
        ("HOME", "/home/dztest"),
        ("USER", "dztest"),
        ("LOGNAME", "dztest"),
        ("SHELL", "/bin/sh"),
        ("PATH", SAFE_PATH),
        ("LANG", "C.UTF-8"),
        ("LC_TIME", "de_DE.UTF-8"),
        ("TZ", "UTC"),
        ("TERM", "xterm"),
        ("SBCL_HOME", "/usr/lib/sbcl"),
    ]);
    assert_eq!(plan.env, expected);
    assert_eq!(plan.identity, Some(switch.clone()));
    assert_eq!(plan.umask, 0o037);
    // :before-parent-exit-fn runs as the caller, with the caller's environment.
    let parent_exit = super::plan(
        &spec(),
        &Runner::sbcl("sbcl"),
        &Mode::ParentExit { pid: 1, status: 10 },
        Some(&switch),
        &log(),
        &Caller {
            env: caller.clone(),
            dir: None,
        },
    );
    assert_eq!((parent_exit.identity, parent_exit.env), (None, caller));
}

#[test]
fn the_plan_says_every_descriptor_and_the_directory() {
    use Slot::*;
    let daemon = |spec: &DaemonSpec, runner: &Runner| simple_plan(spec, runner, &Mode::Daemon);
    let mut spec = spec();
    let plan = daemon(&spec, &Runner::sbcl("sbcl"));
    assert_eq!(plan.cwd, Some(std::path::PathBuf::from("/")));
    assert_eq!(
        plan.fds,
        [
            (Null, 0),
            (Null, 1),
            (Null, 2),
            (Bootstrap, 3),
            (Ready, 4),
            (Lock, 5)
        ]
    );
    let clisp = Runner::from_env_value(Some("clisp".into()));
    assert_eq!(daemon(&spec, &clisp).fds.last(), Some(&(ReadyReader, 7)));
    spec.output = Some("/var/log/x.log".into());
    spec.restart = crate::config::RestartPolicy::Always;
    // A supervised Lisp: the supervisor holds the lock and reads the pipe.
    assert_eq!(
        daemon(&spec, &clisp).fds,
        [
            (Null, 0),
            (Output, 1),
            (Output, 2),
            (Bootstrap, 3),
            (Ready, 4),
            (Cause, CAUSE_FD)
        ]
    );
    let foreground = simple_plan(&spec, &clisp, &Mode::Foreground { report_ready: true });
    assert_eq!(
        (foreground.cwd, foreground.fds),
        (None, vec![(Bootstrap, 3), (Ready, 4)])
    );
    // :reload-function: the daemon's reload pipe, both ends, close-on-exec
    // for its own children; a nodaemon Lisp reloads without one.
    spec.reload_function = code("(lambda () t)");
    let reloading = daemon(&spec, &Runner::sbcl("sbcl"));
    assert_eq!(
        reloading.fds[reloading.fds.len() - 3..],
        [
            (Cause, CAUSE_FD),
            (Reload, RELOAD_FD),
            (ReloadReader, RELOAD_READER_FD)
        ]
    );
    assert!(reloading.bootstrap.contains("(defparameter *cause-fd* 12)"));
    // :listen: the held sockets on 3, 4 (systemd's), the bootstrap and the
    // readiness pipe above the reload pipe; not for CLISP.
    spec.listen = vec![
        crate::config::Listen {
            name: "http".into(),
            port: 8080,
            address: [0, 0, 0, 0].into(),
            backlog: 511,
        },
        crate::config::Listen {
            name: "admin".into(),
            port: 8081,
            address: [127, 0, 0, 1].into(),
            backlog: 16,
        },
    ];
    let listening = daemon(&spec, &Runner::sbcl("sbcl"));
    assert_eq!(
        listening.fds[3..7],
        [
            (Bootstrap, LISTENING_BOOTSTRAP_FD),
            (Ready, LISTENING_READY_FD),
            (Listener(0), 3),
            (Listener(1), 4)
        ]
    );
    assert!(listening.args.contains(&"/dev/fd/10".into()));
    assert!(listening.env.contains(&("LISTEN_FDS".into(), "2".into())));
    assert!(
        listening
            .env
            .contains(&("LISTEN_FDNAMES".into(), "http:admin".into()))
    );
    assert!(
        listening
            .bootstrap
            .contains("(defparameter *listeners* '((\"http\" 3 :inet) (\"admin\" 4 :inet)))")
    );
    let clisp_listening = daemon(&spec, &clisp);
    assert!(
        !clisp_listening
            .fds
            .iter()
            .any(|(s, _)| matches!(s, Listener(_)))
    );
    assert!(!clisp_listening.env.iter().any(|(k, _)| k == "LISTEN_FDS"));
    spec.listen.clear();
    assert!(
        reloading
            .bootstrap
            .contains("(defparameter *close-fds* '(3 5 8 9))")
    );
    assert!(reloading.bootstrap.contains("(defparameter *reload-fd* 8)"));
    let foreground = simple_plan(
        &spec,
        &Runner::sbcl("sbcl"),
        &Mode::Foreground {
            report_ready: false,
        },
    );
    assert!(
        foreground
            .bootstrap
            .contains("(defparameter *reload-fd* nil)")
    );
    assert!(
        foreground
            .bootstrap
            .contains("(defparameter *reload-function* \"(lambda () t)\")")
    );
}

#[test]
fn a_daemon_is_supervised_when_its_conf_says_so() {
    let mut spec = spec();
    let daemon = |spec: &DaemonSpec| simple_plan(spec, &Runner::sbcl("sbcl"), &Mode::Daemon);
    assert_eq!(daemon(&spec).supervision, None);
    spec.output = Some("/var/log/x.log".into());
    assert_eq!(daemon(&spec).output, spec.output);
    assert_eq!(
        daemon(&spec).supervision,
        None,
        ":output alone is opened by the daemon"
    );
    spec.restart = crate::config::RestartPolicy::OnFailure;
    let policy = daemon(&spec).supervision.expect("a supervisor");
    assert_eq!(
        (policy.restart, policy.rotation),
        (
            crate::config::RestartPolicy::OnFailure,
            Some((Some(super::DEFAULT_OUTPUT_MAX), 5))
        )
    );
    let foreground = simple_plan(
        &spec,
        &Runner::sbcl("sbcl"),
        &Mode::Foreground {
            report_ready: false,
        },
    );
    assert_eq!((foreground.output, foreground.supervision), (None, None));
}

#[test]
fn without_a_switch_the_callers_environment_is_kept_and_the_conf_adds() {
    let caller = env(&[
        ("HOME", "/home/me"),
        ("APP_MODE", "dev"),
        ("PATH", "/usr/bin"),
    ]);
    let extra = vec![
        ("APP_MODE".to_string(), "production".to_string()),
        ("WORKERS".to_string(), "4".to_string()),
    ];
    assert_eq!(
        environment(&caller, None, LispKind::Sbcl, &extra),
        env(&[
            ("HOME", "/home/me"),
            ("PATH", "/usr/bin"),
            ("APP_MODE", "production"),
            ("WORKERS", "4"),
        ])
    );
    let login = Login {
        name: "u",
        home: std::path::Path::new("/home/u"),
        shell: std::path::Path::new("/bin/bash"),
    };
    let built = environment(&caller, Some(login), LispKind::Sbcl, &extra);
    assert_eq!(built.last(), Some(&("WORKERS".into(), "4".into())));
    assert!(built.contains(&("APP_MODE".into(), "production".into())));
    assert!(!built.iter().any(|(k, v)| k == "HOME" && v == "/home/me"));
}

#[test]
fn runners_are_chosen_by_basename_and_differ_as_data() {
    let ecl = Runner::from_env_value(Some("/usr/bin/ecl".into()));
    assert_eq!(ecl.kind, LispKind::Ecl);
    assert!(ecl.features.contains("ECL") && !ecl.features.contains("SBCL"));
    let plan = simple_plan(&spec(), &ecl, &Mode::Daemon);
    assert_eq!(
        plan.args,
        [
            "--eval",
            "(load (open \"/dev/fd/3\" :external-format :utf-8) :verbose nil)"
        ]
    );
    assert!(plan.bootstrap.contains(LispKind::Ecl.facts().prelude));
    assert!(!plan.bootstrap.contains(LispKind::Sbcl.facts().prelude));
    assert_eq!(
        Runner::from_env_value(Some("/opt/my-lisp".into())).kind,
        LispKind::Sbcl
    );
    assert_eq!(
        Runner::for_kind(LispKind::Ecl, Some("sbcl".into())).program,
        OsString::from("ecl")
    );
    assert_eq!(
        Runner::for_kind(LispKind::Ecl, Some("/opt/ecl".into())).program,
        OsString::from("/opt/ecl")
    );
    assert_eq!(
        LispKind::Clisp.facts().stop_signal,
        nix::sys::signal::Signal::SIGTERM
    );
    // SBCL's contribs are not offered to ECL; ASDF is.
    let mut spec = spec();
    spec.main_function = code("#.(lambda () (sb-posix:getpid) (asdf:load-system :x))");
    let plan = simple_plan(&spec, &ecl, &Mode::Daemon);
    assert!(
        plan.bootstrap
            .contains("(defparameter *required-modules* '(\"ASDF\"))")
    );
}

/// The builder of a core runs the user's code: nothing of the caller's
/// terminal reaches it, and it says what it does on its pipe. A conf's
/// `:listen` gives it no socket, and its bootstrap is read where it is
/// (a builder of a `:listen` conf read a descriptor it did not have).
#[test]
fn a_core_builder_gets_no_terminal() {
    use Slot::*;
    let mut listening = spec();
    listening.listen = vec![crate::config::Listen {
        name: "http".into(),
        port: 8080,
        address: [127, 0, 0, 1].into(),
        backlog: 511,
    }];
    for spec in [spec(), listening] {
        let plan = simple_plan(
            &spec,
            &Runner::sbcl("sbcl"),
            &Mode::BuildCore {
                file: PathBuf::from("/var/cache/daemonization/.build-1/image.core"),
            },
        );
        assert_eq!(
            plan.fds,
            [(Null, 0), (Null, 1), (Null, 2), (Bootstrap, 3), (Ready, 4)]
        );
        assert!(
            plan.args.iter().any(|a| a == "/dev/fd/3"),
            "{:?}",
            plan.args
        );
        assert!(plan.bootstrap.contains("(defparameter *ready-fd* 4)"));
    }
    let plan = simple_plan(
        &spec(),
        &Runner::sbcl("sbcl"),
        &Mode::BuildCore {
            file: PathBuf::from("/var/cache/daemonization/.build-1/image.core"),
        },
    );
    assert!(plan.bootstrap.contains("(defparameter *mode* :build-core)"));
    assert!(
        plan.bootstrap.contains(
            "(defparameter *core-file* \"/var/cache/daemonization/.build-1/image.core\")"
        )
    );
    assert_eq!(plan.cwd, None);
}

/// The names that follow `opener` in `text` (`(defun %x`, `(%x`).
fn names_after<'a>(text: &'a str, opener: &str) -> std::collections::BTreeSet<&'a str> {
    text.match_indices(opener)
        .map(|(at, _)| {
            let rest = &text[at + opener.len() - 1..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ')' || c == '(')
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Every `%` function the portable part calls (the bootstrap and the
/// shared defaults) is defined for every runner: by its own prelude or by
/// a shared default.
#[test]
fn every_function_the_bootstrap_calls_is_defined_for_every_runner() {
    let called: Vec<&str> = [BOOTSTRAP, PRELUDE_COMMON]
        .iter()
        .flat_map(|text| {
            names_after(text, "(%")
                .into_iter()
                .chain(names_after(text, "#'%"))
        })
        .collect();
    assert!(called.contains(&"%wait-for-stop"), "{called:?}");
    let defaults = names_after(PRELUDE_COMMON, "(define-default %");
    assert!(defaults.contains("%require"), "{defaults:?}");
    for runner in super::runner::RUNNERS {
        let own = names_after(runner.prelude, "(defun %");
        for name in &called {
            assert!(
                own.contains(name) || defaults.contains(name),
                "{} defines no {name}, and there is no shared default",
                runner.name
            );
        }
        // The control socket's server, where the runner opens one.
        if runner.adopts_descriptors {
            for name in names_after(super::CONTROL, "(%") {
                assert!(
                    own.contains(name) || defaults.contains(name),
                    "{} defines no {name} for control.lisp",
                    runner.name
                );
            }
        }
        // A Lisp's own prelude defines only what it does its own way: no
        // copy of a shared default.
        for name in own.iter().filter(|name| defaults.contains(*name)) {
            assert_ne!(
                definition(runner.prelude, &format!("(defun {name} ")),
                definition(PRELUDE_COMMON, &format!("(define-default {name} ")),
                "{}'s {name} is a copy of the shared default",
                runner.name
            );
        }
    }
}

/// The daemon's stop and error lines go to its stderr but under systemd
/// with syslog logging, where the log line reaches the journal once.
#[test]
fn under_systemd_with_syslog_each_line_is_told_once() {
    let runner = Runner::from_env_value(None);
    let syslog = Destinations {
        info: Destination::Syslog,
        error: Destination::Syslog,
        trace: Destination::Nowhere,
    };
    for (mode, log, messages) in [
        (Mode::Service, &syslog, "nil"),
        (Mode::Daemon, &syslog, "t"),
        (Mode::Service, &log(), "t"),
    ] {
        let plan = plan(&spec(), &runner, &mode, None, log, &Caller::default());
        assert!(
            plan.bootstrap
                .contains(&format!("(defparameter *messages* {messages})")),
            "{mode:?}"
        );
    }
}

/// The text of the definition that begins with `opener`, to its blank line.
fn definition<'a>(text: &'a str, opener: &str) -> &'a str {
    let rest = &text[text.find(opener).unwrap() + opener.len()..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// The modules Rust has loaded before the user's code runs are modules
/// the bootstrap knows by their packages, in every runner that loads them.
#[test]
fn the_modules_rust_loads_are_known_to_the_preludes() {
    let all = modules_named(["asdf uiop sb-posix sb-introspect"]);
    assert_eq!(all, ["ASDF", "SB-POSIX", "SB-INTROSPECT"]);
    for runner in super::runner::RUNNERS {
        let packages = match runner.prelude.contains("*module-packages*") {
            true => runner.prelude,
            false => PRELUDE_COMMON,
        }
        .to_uppercase();
        for module in &all {
            if *module == "ASDF" || runner.sbcl_contribs {
                assert!(
                    packages.contains(&format!(". \"{module}\")")),
                    "{} does not know the module {module}",
                    runner.name
                );
            }
        }
    }
}
