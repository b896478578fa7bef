//! Logging conf and line format.

use std::fs;

use super::*;

fn features() -> Features {
    Features::sbcl_linux_x86_64()
}

#[test]
fn built_in_conf_sends_everything_to_syslog() {
    for admin in [false, true] {
        let d = load(None, &trust(admin), &features()).unwrap();
        assert_eq!(
            (d.info, d.error, d.trace),
            (
                Destination::Syslog,
                Destination::Syslog,
                Destination::Syslog
            )
        );
    }
}

#[test]
fn file_destinations_are_under_the_files_dir_of_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("logging.conf");
    fs::write(
        &conf,
        "(:files-dir \"logs\" :admin-files-dir :this-dir\n\
         :info-destination \"info.log\" :error-destination :system :trace-destination nil\n\
         :admin-info-destination \"admin.log\" :admin-error-destination \"admin.log\")",
    )
    .unwrap();
    let user = load(Some(&conf), &trust(false), &features()).unwrap();
    assert_eq!(
        user.info,
        Destination::File(dir.path().join("logs/info.log"))
    );
    assert_eq!(user.error, Destination::Syslog);
    assert_eq!(user.trace, Destination::Nowhere);
    let admin = load(Some(&conf), &trust(true), &features()).unwrap();
    assert_eq!(admin.info, Destination::File(dir.path().join("admin.log")));
    assert_eq!(admin.error, Destination::File(dir.path().join("admin.log")));
    assert_eq!(admin.trace, Destination::Syslog, "not given: the default");
}

#[test]
fn unknown_keys_and_bad_values_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("logging.conf");
    fs::write(
        &conf,
        "(:info-destination :system\n :warn-destination :system)",
    )
    .unwrap();
    let err = load(Some(&conf), &trust(false), &features())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}:2:2: unknown key :warn-destination: expected one of (",
            conf.display()
        )),
        "{err}"
    );
    fs::write(&conf, "(:info-destination 42)").unwrap();
    let err = load(Some(&conf), &trust(false), &features())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:1:20: expected :system, a file name, or nil as the value of :info-destination but found 42\n  |\n1 | (:info-destination 42)\n  |                    ^^",
            conf.display()
        )
    );
}

#[test]
fn lines_have_the_original_plist_shape() {
    let logger = Logger::new(
        load(None, &trust(false), &features()).unwrap(),
        Context {
            name: Some("web".into()),
            command: "start".into(),
            user: Some("root".into()),
            verbose: false,
        },
    );
    let line = logger.line(
        Level::Info,
        "success started (pid = 42 pid-file = /run/x.pid)",
    );
    assert_eq!(
        line,
        format!(
            "(:DAEMONIZATION :INFO \"success started (pid = 42 pid-file = /run/x.pid)\" :PID {} :NAME \"web\" :COMMAND \"start\" :USER \"root\")",
            std::process::id()
        )
    );
    assert!(
        logger
            .line(Level::Error, "a\nb")
            .contains(":ERROR \"a // b\"")
    );
}

/// The caller's trust, as root (`admin`) or not, trusting this test's files.
fn trust(admin: bool) -> crate::trust::Trust {
    crate::trust::Trust {
        root: admin,
        uid: nix::unistd::geteuid().as_raw(),
    }
}
