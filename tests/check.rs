//! `check` and the command line, on the real binary, with SBCL as the judge
//! of what Lisp would read.

use std::fs;

use crate::util::*;

/// Every conf file of the original reads; every daemon conf checks.
#[test]
fn original_confs_all_check() {
    let pids = tempfile::tempdir().unwrap();
    for conf in [
        "conf-files/default.conf",
        "examples/example1.conf",
        "scripts/daemon.conf",
        "tests/base-conf-params.conf",
        "tests/parent-conf-params1.conf",
        "tests/parent-conf-params2.conf",
        "tests/result-conf-params.conf",
    ] {
        let path = fixture(&format!("original-confs/{conf}"));
        let out = run(pids.path(), &[path.to_str().unwrap(), "check"]);
        assert_eq!(out.status.code(), Some(0), "{conf}: {}", stderr(&out));
        assert!(stdout(&out).contains(&format!(
            ":conf-params-file {}",
            lisp_string(path.to_str().unwrap())
        )));
    }
}

/// The original's own merge test, judged by SBCL reading both files.
#[test]
fn merge_of_base_conf_equals_result_conf_for_sbcl() {
    let dir = tempfile::tempdir().unwrap();
    let base = fixture("original-confs/tests/base-conf-params.conf");
    let out = run(dir.path(), &[base.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let merged = dir.path().join("merged.conf");
    fs::write(&merged, stdout(&out)).unwrap();
    let result = fixture("original-confs/tests/result-conf-params.conf");
    let verdict = sbcl_script(
        dir.path(),
        &format!(
            r#"(defun read-conf (p) (with-open-file (s p :external-format :utf-8) (read s)))
(defun conf-keys (plist) (remove :conf-params-file (loop for k in plist by #'cddr collect k)))
(let* ((a (read-conf {merged})) (b (read-conf {result}))
       (keys (union (conf-keys a) (conf-keys b))))
  (format t "~d keys~%" (length keys))
  (dolist (k keys)
    (unless (equal (getf a k) (getf b k))
      (format t "differs ~s: ~s vs ~s~%" k (getf a k) (getf b k)))))"#,
            merged = lisp_string(merged.to_str().unwrap()),
            result = lisp_string(result.to_str().unwrap()),
        ),
    );
    assert_eq!(verdict, "13 keys\n");
}

/// Code is handed on verbatim: what SBCL reads from `check`'s output is what
/// it reads from the original file.
#[test]
fn tricky_functions_survive_check_for_sbcl() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tricky.conf");
    fs::write(
        &conf,
        r#";;; Комментарий по-русски
(:name "сервис" ; a comment with "quotes" and (parens
 :main-function #'(lambda ()
                    ;; строка с ; и " внутри
                    (list "a;b\"c" #\) #\( #\; #| a #| nested |# comment |#
                          '|Mixed Case| #+sbcl "sbcl" #-sbcl "other" "Привет" #o037 1/3 1.5d0))
 :before-init-fn #.(lambda () (list "x)" #\" (quote sym) #P"/tmp/x"))
 :os-params (:linux-umask #o027))
"#,
    )
    .unwrap();
    let out = run(dir.path(), &[conf.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let checked = dir.path().join("checked.conf");
    fs::write(&checked, stdout(&out)).unwrap();
    let verdict = sbcl_script(
        dir.path(),
        &format!(
            r#"(setf sb-impl::*default-external-format* :utf-8)
(defun read-conf (p) (with-open-file (s p :external-format :utf-8) (let ((*read-eval* t)) (read s))))
(let ((a (read-conf {checked})) (b (read-conf {original})))
  (print (list (equal (getf a :main-function) (getf b :main-function))
               (equal (funcall (getf a :before-init-fn)) (funcall (getf b :before-init-fn)))
               (equal (getf a :name) (getf b :name))
               (getf a :os-params)
               (length (third (second (getf a :main-function)))))))"#,
            checked = lisp_string(checked.to_str().unwrap()),
            original = lisp_string(conf.to_str().unwrap()),
        ),
    );
    assert_eq!(verdict.trim(), "(T T T (:LINUX-UMASK 23) 11)");
}

/// A conf error: `ERROR: file:line:col: message`, the line, a caret; exit 6.
#[test]
fn conf_error_is_located_with_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    fs::write(&conf, "(:name \"x\"\n :user 42)\n").unwrap();
    let out = run(dir.path(), &[conf.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: {}:2:8: expected a string or nil as the value of :user but found 42\n  |\n2 |  :user 42)\n  |        ^^\n",
            conf.display()
        )
    );
}

#[test]
fn missing_conf_file_is_a_conf_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nope.conf");
    let out = run(dir.path(), &[conf.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        format!("ERROR: no conf file at {}\n", conf.display())
    );
}

/// `help` and `--help` show how to call the tool and every command; `help
/// keys` every conf key; exit 0.
#[test]
fn help_lists_commands_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["help"][..], &["--help"], &["any.conf", "help"]] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        assert!(
            text.starts_with("Usage: daemonization [OPTIONS] <CONF-FILE|DIR> <COMMAND>\n"),
            "{text}"
        );
        for row in daemonization::command::COMMANDS {
            assert!(
                text.contains(&format!("\n  {:<9} {}\n", row.name, row.doc)),
                "{}",
                row.name
            );
        }
        assert!(
            text.ends_with("The conf keys: daemonization help keys\n"),
            "{text}"
        );
    }
    let out = run(dir.path(), &["help", "keys"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for key in daemonization::config::keys::KEYS {
        assert!(
            text.contains(&format!("\n  :{}  ", key.name)),
            "{} missing",
            key.name
        );
    }
}

/// A usage error is one line and where to look, exit 2: an unknown
/// command (with the command it most likely meant), swapped arguments, a
/// missing command. Nothing runs.
#[test]
fn usage_errors_are_one_line_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let conf = fixture("original-confs/examples/example1.conf");
    let conf = conf.to_str().unwrap();
    let cases: [(&[&str], String); 4] = [
        (&[conf, "launch"], "unknown command \"launch\"".into()),
        (
            &[conf, "stauts"],
            "unknown command \"stauts\"; did you mean status?".into(),
        ),
        (
            &["start", conf],
            format!("the conf file comes first, then the command: daemonization {conf} start"),
        ),
        (&[conf], "missing the command".into()),
    ];
    for (args, message) in cases {
        let out = run(dir.path(), args);
        assert_eq!(
            (out.status.code(), stdout(&out), stderr(&out)),
            (
                Some(2),
                String::new(),
                format!("ERROR: {message}\nsee 'daemonization --help'\n")
            ),
            "{args:?}"
        );
    }
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "logging.conf")
        .collect();
    assert!(made.is_empty(), "nothing ran: {made:?}");
}

/// Every file of the original's conf tree reads as Lisp (the logging conf
/// and the features file too), as SBCL would read it.
#[test]
fn every_original_file_reads() {
    use daemonization::reader::{Features, read_all};
    let root = fixture("original-confs");
    let mut read = 0;
    for dir in fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let files: Vec<_> = if dir.is_dir() {
            fs::read_dir(&dir)
                .unwrap()
                .map(|f| f.unwrap().path())
                .collect()
        } else {
            vec![dir]
        };
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            let forms = read_all(&text, &Features::sbcl_linux_x86_64())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(forms.len(), 1, "{}", file.display());
            read += 1;
        }
    }
    assert_eq!(read, 9, "the fixture tree has 9 files");
}

/// `info` tells what the Lisp API asks the tool: the keys, the pid directory.
#[test]
fn info_tells_the_keys_and_the_pid_directory() {
    let out = std::process::Command::new(bin())
        .arg("info")
        .env("DAEMONIZATION_PID_DIR", "/srv/pids")
        .output()
        .unwrap();
    let keys: Vec<String> = daemonization::config::keys::KEYS
        .iter()
        .map(|k| format!(":{}", k.name))
        .collect();
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (
            Some(0),
            format!("(:keys ({}) :pid-dir \"/srv/pids/\")\n", keys.join(" "))
        )
    );
}

/// A conf as a Windows editor saves it (a UTF-8 byte-order mark, CRLF
/// lines) with `#P` literals and strings alike for every path key and `~/`
/// paths: `check` reads it and prints the paths the tool will use, `~/` in
/// the caller's home (root's own as root, else `HOME`).
#[test]
fn check_prints_the_paths_the_tool_will_use() {
    let sb = Sandbox::new();
    sb.conf("base.conf", "(:name \"base\")");
    let conf = sb.conf(
        "site.conf",
        "\u{feff};; site\r\n(:pid-file #P\"~/run/site.pid\"\r\n :output #P\"logs/site.log\"\r\n \
         :fasl-dir \"~/cache/fasl/\"\r\n :parent-conf-file #P\"base.conf\")\r\n",
    );
    let out = sb.run_with(
        &conf,
        &["check"],
        &[("HOME", sb.path("home").to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let home = if root() {
        nix::unistd::User::from_uid(0.into()).unwrap().unwrap().dir
    } else {
        sb.path("home")
    };
    let head: Vec<String> = stdout(&out).lines().take(5).map(str::to_string).collect();
    assert_eq!(
        head,
        [
            format!(";; conf: {}", conf.display()),
            format!(";; pid file: {}", home.join("run/site.pid").display()),
            format!(";; read from: {}", sb.path("base.conf").display()),
            format!(";; output: {}", sb.path("logs/site.log").display()),
            format!(";; fasl dir: {}", home.join("cache/fasl").display()),
        ]
    );
    assert!(
        stdout(&out).contains(" :name \"base\"\n"),
        "{}",
        stdout(&out)
    );
    // Every key the tool uses is shown: those no level gives with their
    // defaults, as comments after the list (which reads the same).
    let text = stdout(&out);
    let defaults = text
        .split_once(")\n;; not in the conf, so the defaults:\n")
        .expect("defaults after the list")
        .1;
    assert!(defaults.contains(";;  :start-timeout 60\n"), "{defaults}");
    assert!(
        defaults.contains(";;  :stop-schedule \"USR1/60/KILL/5\"\n"),
        "{defaults}"
    );
    assert!(!defaults.contains(":fasl-dir"), "given, so not a default");
    // All keys but the 13 of the default conf, :output and :fasl-dir (given)
    // and :conf-params-file (in the list).
    assert_eq!(
        defaults.lines().count(),
        daemonization::config::keys::KEYS.len() - 16,
        "{defaults}"
    );
}

/// A machine without a syslog daemon is not an error of the command: no
/// warning by default (CI runs no syslog daemon but during the syslog
/// tests); `-v` says why syslog failed, naming `/dev/log`;
/// `DAEMONIZATION_LOG=none` turns logging off, `-v` or not.
#[test]
fn a_missing_syslog_is_quiet_unless_asked() {
    let sb = Sandbox::new();
    let conf = sb.conf("q.conf", "(:pid-file \"q.pid\")");
    let status = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = sb.command(&conf, args);
        command.env_remove("LOGGING_CONF").envs(env.iter().copied());
        command.output().unwrap()
    };
    let out = status(&["status"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out), "");
    let out = status(&["status", "-v"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.is_empty()
            || (err.starts_with("WARNING: cannot write the log (syslog): /dev/log")
                && err.lines().count() == 1),
        "{err}"
    );
    let out = status(&["-v", "status"], &[("DAEMONIZATION_LOG", "none")]);
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(3), ""));
}

/// `list` and `completions` take what they take, and say so otherwise.
#[test]
fn list_and_completions_say_what_they_take() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (&["list", "extra"][..], "list takes no conf and no command"),
        (
            &["--print", "plist", "list"],
            "list prints a table, or JSON with --print json",
        ),
        (
            &["completions"],
            "completions needs a shell: bash, zsh, fish, elvish or powershell",
        ),
    ] {
        let out = run(dir.path(), args);
        assert_eq!(
            (out.status.code(), stderr(&out)),
            (
                Some(2),
                format!("ERROR: {message}\nsee 'daemonization --help'\n")
            ),
            "{args:?}"
        );
    }
}
