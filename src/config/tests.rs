//! Conf model tests: typed values, merging, and exact located errors.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn env(dir: &Path) -> ConfEnv {
    ConfEnv {
        features: Features::sbcl_linux_x86_64(),
        default_conf: None,
        pid_dirs: PidDirs {
            uid: 1000,
            explicit: Some(dir.join("pids")),
            xdg_runtime_dir: None,
        },
        trust: crate::trust::Trust::of_caller(),
        home: Some(PathBuf::from("/home/caller")),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn load_text(text: &str) -> (tempfile::TempDir, Result<Conf, ConfError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "c.conf", text);
    let conf = load(&path, &env(dir.path()));
    (dir, conf)
}

/// The error rendered with the temporary directory replaced by `DIR`.
fn error_of(text: &str) -> String {
    let (dir, conf) = load_text(text);
    let err = conf.expect_err(text).to_string();
    err.replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn typed_values_and_defaults() {
    let (dir, conf) = load_text(
        "(:pid-file \"web.pid\" :pid-file-dir :this-dir :user \"www\" :exit nil\n\
          :main-function #'(lambda () (print \"hi\")) :os-params (:linux-umask #o022))",
    );
    let conf = conf.unwrap();
    let spec = &conf.spec;
    assert_eq!(conf.pid_file, dir.path().join("web.pid"));
    assert_eq!(spec.user.as_deref(), Some("www"));
    assert_eq!(spec.group, None);
    assert!(!spec.exit);
    assert!(spec.listen_privileged_ports, "from the default conf");
    assert_eq!(spec.umask(), 0o022);
    let main = spec.main_function.as_ref().unwrap();
    assert_eq!(main.text, "#'(lambda () (print \"hi\"))");
    assert_eq!(main.shape, FunctionShape::Function);
    assert_eq!(main.origin.1, 2);
    assert_eq!(spec.conf_params_file.as_deref(), Some(conf.path.as_path()));
}

#[test]
fn function_shapes() {
    for (text, shape) in [
        ("#.(lambda () 1)", FunctionShape::ReadEval),
        ("#'start-server", FunctionShape::Function),
        ("(lambda () 1)", FunctionShape::Lambda),
        ("my-package:start", FunctionShape::Symbol),
    ] {
        let (_dir, conf) = load_text(&format!("(:main-function {text})"));
        let main = conf.unwrap().spec.main_function.unwrap();
        assert_eq!((main.text.as_str(), main.shape), (text, shape));
    }
}

#[test]
fn default_pid_file_goes_to_the_tool_pid_dir() {
    let (dir, conf) = load_text("()");
    assert_eq!(conf.unwrap().pid_file, dir.path().join("pids/default-pid"));
}

#[test]
fn parents_merge_farthest_first_and_relative_to_the_naming_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("base")).unwrap();
    write(
        dir.path(),
        "base/grand.conf",
        "(:name \"grand\" :user \"g\" :group \"g\")",
    );
    write(
        dir.path(),
        "base/parent.conf",
        "(:parent-conf-file \"grand.conf\" :user \"p\")",
    );
    let child = write(
        dir.path(),
        "child.conf",
        "(:parent-conf-file \"parent.conf\" :parent-conf-file-dir \"base\" :group \"c\")",
    );
    let conf = load(&child, &env(dir.path())).unwrap();
    assert_eq!(conf.spec.name.as_deref(), Some("grand"));
    assert_eq!(conf.spec.user.as_deref(), Some("p"));
    assert_eq!(conf.spec.group.as_deref(), Some("c"));
    assert_eq!(
        conf.spec.parent_conf_file.as_deref(),
        Some(Path::new("parent.conf"))
    );
}

#[test]
fn replacement_default_conf() {
    let dir = tempfile::tempdir().unwrap();
    let default = write(
        dir.path(),
        "default.conf",
        "(:pid-file \"d.pid\" :pid-file-dir \"/var/d\" :os-params nil)",
    );
    let conf_path = write(dir.path(), "c.conf", "(:name \"x\")");
    let mut env = env(dir.path());
    env.default_conf = Some(default);
    let conf = load(&conf_path, &env).unwrap();
    assert_eq!(conf.pid_file, Path::new("/var/d/d.pid"));
    assert_eq!(conf.spec.umask(), 0o037);
    assert!(
        !conf.spec.listen_privileged_ports,
        "not given by the replacement"
    );
}

#[test]
fn check_text_is_sorted_and_verbatim() {
    let (dir, conf) = load_text("(:user \"u\" ; who\n :main-function #.(lambda () #+sbcl 1 #\\)))");
    let text = conf.unwrap().to_plist_text();
    let path = dir.path().join("c.conf").display().to_string();
    let expected = format!(
        ";; conf: {path}\n;; pid file: {pids}/default-pid\n\
         (:before-init-fn nil\n :before-parent-exit-fn nil\n :conf-params-file \"{path}\"\n :exit t\n \
         :group nil\n :listen-privileged-ports t\n :main-function #.(lambda () #+sbcl 1 #\\))\n :name nil\n \
         :os-params (:linux-umask #o037)\n :parent-conf-file nil\n :parent-conf-file-dir nil\n \
         :pid-file \"default-pid\"\n :pid-file-dir nil\n :user \"u\")\n",
        pids = dir.path().join("pids").display()
    );
    assert_eq!(text, expected);
}

#[test]
fn errors_render_exactly() {
    let cases: Vec<(&str, String)> = vec![
        (
            "(:ready :soon)",
            "DIR/c.conf:1:9: expected :returned, :notify, (:port N), (:port N :address \"127.0.0.1\") or nil as the value of :ready but found :soon\n  |\n1 | (:ready :soon)\n  |         ^^^^^".into(),
        ),
        (
            "(:ready (:port 0))",
            "DIR/c.conf:1:9: expected :returned, :notify, (:port N), (:port N :address \"127.0.0.1\") or nil as the value of :ready but found (:port 0)\n  |\n1 | (:ready (:port 0))\n  |         ^^^^^^^^^".into(),
        ),
        (
            "(:listen ((:port 80 :name \"a:b\")))",
            "DIR/c.conf:1:27: expected a name of letters, digits, - and _ (at most 64), not used twice as the value of :listen :name but found \"a:b\"\n  |\n1 | (:listen ((:port 80 :name \"a:b\")))\n  |                           ^^^^^".into(),
        ),
        (
            "(:listen (:port 80 :host \"x\"))",
            "DIR/c.conf:1:20: unknown key :host in :listen: expected one of (:NAME :PORT :ADDRESS :BACKLOG)\n  |\n1 | (:listen (:port 80 :host \"x\"))\n  |                    ^^^^^".into(),
        ),
        (
            "(:listen ((:name \"web\")))",
            "DIR/c.conf:1:11: expected a port number from 1 to 65535 as the value of :listen :port but found (:name \"web\")\n  |\n1 | (:listen ((:name \"web\")))\n  |           ^^^^^^^^^^^^^".into(),
        ),
        (
            "(:listen (:name \"web\" :port 8080) :ready (:port 8080))",
            "DIR/c.conf:1:42: port 8080 is held by :listen (\"web\"), so a probe of it succeeds before the daemon is ready: use :ready :notify and call (daemonization:ready) once the site serves\n  |\n1 | (:listen (:name \"web\" :port 8080) :ready (:port 8080))\n  |                                          ^^^^^^^^^^^^".into(),
        ),
        (
            "(:pid-file \"/run/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/w.pid\" :ready :notify)",
            "DIR/c.conf:1:123: the notify socket would be /run/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/w.pid.control/notify (116 bytes), longer than a socket's path can be (107 bytes): give :pid-file a shorter path\n  |\n1 | (:pid-file \"/run/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/w.pid\" :ready :notify)\n  |                                                                                                                           ^^^^^^^".into(),
        ),
        (
            "(:user 42)",
            "DIR/c.conf:1:8: expected a string or nil as the value of :user but found 42\n  |\n1 | (:user 42)\n  |        ^^".into(),
        ),
        (
            "(:os-params (:linux-umask \"x\"))",
            "DIR/c.conf:1:27: expected an integer from 0 to #o777 as the value of :os-params :linux-umask but found \"x\"\n  |\n1 | (:os-params (:linux-umask \"x\"))\n  |                           ^^^".into(),
        ),
        (
            "(:os-params (:umask 2))",
            "DIR/c.conf:1:14: unknown key :umask in :os-params: expected one of (:LINUX-UMASK)\n  |\n1 | (:os-params (:umask 2))\n  |              ^^^^^^".into(),
        ),
        (
            "(:pid-fil \"x\")",
            "DIR/c.conf:1:2: unknown key :pid-fil (did you mean :pid-file?); every key: daemonization help keys\n  |\n1 | (:pid-fil \"x\")\n  |  ^^^^^^^^".into(),
        ),
        (
            "(:user \"a\"\n :user \"b\")",
            "DIR/c.conf:2:2: repeated key :user (first given at 1:2): give each key once\n  |\n2 |  :user \"b\")\n  |  ^^^^^".into(),
        ),
        (
            "(:name \"x\"\n :main-function #.(lambda () (start))\n   (sb-thread:join-thread t))",
            "DIR/c.conf:3:4: expected a keyword but found (sb-thread:join-thread t): is a parenthesis of the value before it closed too early? (this property list opened at 1:1)\n  |\n3 |    (sb-thread:join-thread t))\n  |    ^^^^^^^^^^^^^^^^^^^^^^^^^".into(),
        ),
        (
            "(:user \"a\" :group)",
            "DIR/c.conf:1:12: expected a value after :group but found the end of the list\n  |\n1 | (:user \"a\" :group)\n  |            ^^^^^^".into(),
        ),
        (
            "(user \"a\")",
            "DIR/c.conf:1:2: expected a keyword but found user\n  |\n1 | (user \"a\")\n  |  ^^^^".into(),
        ),
        (
            "\"just a string\"",
            "DIR/c.conf:1:1: expected a property list but found \"just a string\"\n  |\n1 | \"just a string\"\n  | ^^^^^^^^^^^^^^^".into(),
        ),
        (
            "(:user \"a\") (:group \"b\")",
            "DIR/c.conf:1:13: expected end of file after the property list but found (:group \"b\")\n  |\n1 | (:user \"a\") (:group \"b\")\n  |             ^^^^^^^^^^^^".into(),
        ),
        (
            ";; nothing\n",
            "DIR/c.conf:2:1: expected a property list but found end of file\n  |\n2 | \n  | ^".into(),
        ),
        (
            "(:pid-file #.(concatenate 'string \"a\" \"b\"))",
            "DIR/c.conf:1:12: cannot evaluate \"#.\" in the value of :pid-file: only the function keys (:main-function, :before-init-fn, :before-parent-exit-fn) are read by the Lisp; write the value itself\n  |\n1 | (:pid-file #.(concatenate 'string \"a\" \"b\"))\n  |            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^".into(),
        ),
        (
            "(:main-function \"not code\")",
            "DIR/c.conf:1:17: expected a function: #.(lambda ...), #'(lambda ...), #'name, (lambda ...), a symbol, or nil as the value of :main-function but found \"not code\"\n  |\n1 | (:main-function \"not code\")\n  |                 ^^^^^^^^^^".into(),
        ),
        (
            "(:exit 1)",
            "DIR/c.conf:1:8: expected t or nil as the value of :exit but found 1\n  |\n1 | (:exit 1)\n  |        ^".into(),
        ),
        (
            "(:pid-file nil)",
            "DIR/c.conf:1:12: expected a non-empty string or #P\"...\" as the value of :pid-file but found nil\n  |\n1 | (:pid-file nil)\n  |            ^^^".into(),
        ),
        (
            "(:parent-conf-file \"missing.conf\")",
            "DIR/c.conf:1:20: cannot read parent conf file DIR/missing.conf: No such file or directory (os error 2)\n  |\n1 | (:parent-conf-file \"missing.conf\")\n  |                    ^^^^^^^^^^^^^^".into(),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(text), expected, "{text:?}");
    }
}

#[test]
fn a_parent_cycle_prints_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.conf", "(:parent-conf-file \"a.conf\")");
    let a = write(dir.path(), "a.conf", "(:parent-conf-file \"b.conf\")");
    let err = load(&a, &env(dir.path())).unwrap_err().to_string();
    let d = dir.path().display();
    assert_eq!(
        err,
        format!(
            "{d}/b.conf:1:20: parent conf files form a cycle: {d}/a.conf -> {d}/b.conf -> {d}/a.conf\n  |\n1 | (:parent-conf-file \"a.conf\")\n  |                    ^^^^^^^^"
        )
    );
}

/// The built-in default conf (the original's `default.conf`) and the key
/// table agree on every key the conf gives.
#[test]
fn the_default_conf_agrees_with_the_key_table() {
    let source = Arc::new(Source::new(BUILT_IN_DEFAULT, DEFAULT_CONF));
    let dir = tempfile::tempdir().unwrap();
    let layer = read_layer((*source).clone(), &env(dir.path())).unwrap();
    let defaults = defaults::defaults();
    for (name, _) in &layer.entries {
        let mut one = DaemonSpec::default();
        let key = keys::lookup(name).unwrap();
        let (_, form) = layer.entries.iter().find(|(n, _)| n == name).unwrap();
        let at = ValueAt {
            form,
            source: &source,
            key: format!(":{name}"),
        };
        key.kind.apply(&at, &mut one).unwrap();
        let mut from_table = DaemonSpec::default();
        let table_form = reader::read_all(key.default, &Features::sbcl_linux_x86_64()).unwrap();
        let table_source = Source::new("<key table>", key.default);
        let at = ValueAt {
            form: &table_form[0],
            source: &table_source,
            key: format!(":{name}"),
        };
        key.kind.apply(&at, &mut from_table).unwrap();
        assert_eq!(format!("{one:?}"), format!("{from_table:?}"), ":{name}");
    }
    assert_eq!(
        defaults.start_timeout,
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(defaults.os_params.linux_umask, Some(0o037));
    assert_eq!(defaults.output_keep, Some(5));
}

/// The Lisp API's `*default-conf-file-name*` names
/// `conf-examples/default.conf`, shipped for the original's tests: it is
/// the built-in default conf.
#[test]
fn the_shipped_default_conf_is_the_built_in_one() {
    assert_eq!(
        include_str!("../../conf-examples/default.conf"),
        DEFAULT_CONF
    );
}

/// A restas-daemon conf's values the tool reads, written as people write
/// them: `#P` literals, quoted lists either way, a home-relative path.
#[test]
fn restas_values_are_read_as_written() {
    for options in [
        "'(\"--merge-core-pages\")",
        "(quote (\"--merge-core-pages\"))",
    ] {
        let (_dir, conf) = load_text(&format!(
            "(defparameter *name* \"site\")\n\
             (defparameter *pidfile* #P\"/var/run/site/site.pid\")\n\
             (defparameter *fasldir* #P\"~/fasl/\")\n\
             (defparameter *dynamic-space-size* 400)\n\
             (defparameter *lisp-options* {options})\n"
        ));
        let conf = conf.unwrap();
        assert_eq!(conf.pid_file, Path::new("/var/run/site/site.pid"));
        assert_eq!(
            conf.spec.fasl_dir.as_deref(),
            Some(Path::new("/home/caller/fasl"))
        );
        assert_eq!(conf.spec.user.as_deref(), Some("site"));
        assert_eq!(conf.spec.dynamic_space_size, Some(400));
        assert_eq!(conf.spec.lisp_options, ["--merge-core-pages"]);
        assert_eq!(
            conf.derived,
            [(
                "user",
                "*user* defaults to *name* \"site\" in a restas-daemon conf".to_string()
            )]
        );
    }
}

/// Runtime sizes: megabytes or a size string, bounded (16 TiB).
#[test]
fn runtime_sizes_are_megabytes_within_bounds() {
    let (_dir, conf) = load_text(
        "(:pid-file \"x\" :dynamic-space-size \"2G\" :control-stack-size 8 :lisp-options (\"--a\"))",
    );
    let spec = conf.unwrap().spec;
    assert_eq!(
        (
            spec.dynamic_space_size,
            spec.control_stack_size,
            spec.lisp_options
        ),
        (Some(2048), Some(8), vec!["--a".to_string()])
    );
    for bad in ["100000000000000", "0", "\"1500K\"", "-5", "(1 2)"] {
        let error = error_of(&format!("(:pid-file \"x\" :dynamic-space-size {bad})"));
        assert!(
            error.contains("expected a number of megabytes (an integer from 1 to 16777216"),
            "{bad}: {error}"
        );
    }
    assert!(
        error_of("(:pid-file \"x\" :lisp-options (\"a\" 1))")
            .contains("expected a list of strings")
    );
}
