//! What a new user and a Debian admin meet in their first hour: a system
//! user's first site, the reason words of a failed start.

use std::os::unix::fs::MetadataExt as _;

use crate::util::*;

/// A `:user` made by `useradd --system` (home /nonexistent) gets a fasl
/// cache the tool makes for it (/var/cache/daemonization/fasl/NAME/, the
/// user's), so a `:preload` of a system compiles and the site starts; the
/// cache shows in `check`.
#[test]
fn a_system_users_first_site_starts() {
    let user = system_user();
    let sb = open_sandbox();
    let conf = sb.conf(
        "sys.conf",
        "(:pid-file \"sys.pid\" :user \"dzsystem\" :preload (:alexandria)\n \
         :main-function #.(lambda () (alexandria:iota 3)))",
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sb.track(started_pid(&out));
    let cache = std::path::Path::new("/var/cache/daemonization/fasl/dzsystem");
    let meta = std::fs::metadata(cache).unwrap();
    assert_eq!(meta.uid(), user.uid.as_raw());
    assert_eq!(std::fs::metadata(cache.parent().unwrap()).unwrap().uid(), 0);
    let check = stdout(&sb.run(&conf, &["check"]));
    assert!(
        check.contains("/var/cache/daemonization/fasl/dzsystem/"),
        "{check}"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// An error of `:preload` or `:before-init-fn` says so in its reason word
/// (not main-function-error), and its backtrace starts at frame 0.
#[test]
fn a_failed_start_names_the_function_that_failed() {
    let sb = Sandbox::new();
    for (keys, word) in [
        (":preload (:no-such-system)", "preload-error"),
        (
            ":before-init-fn #.(lambda () (error \"no config\"))",
            "before-init-fn-error",
        ),
        (
            ":main-function #.(lambda () (error \"no db\"))",
            "main-function-error",
        ),
    ] {
        let conf = sb.conf("f.conf", &format!("(:pid-file \"f.pid\" {keys})"));
        let out = sb.run(&conf, &["start"]);
        assert_line(
            &out,
            1,
            &format!(
                "failed started - {word} (pid-file = {})",
                sb.pid_file("f.pid").display()
            ),
        );
        assert!(
            stderr(&out).contains("\n  Backtrace:\n    0: "),
            "{}",
            stderr(&out)
        );
    }
}
