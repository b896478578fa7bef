//! restas-daemon confs: run as they are, and through `migrate`.

use std::fs;
use std::path::Path;

use crate::util::*;

/// The user the daemon runs as: the test user as root, else the caller.
fn daemon_user() -> String {
    if root() {
        test_user().name
    } else {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .unwrap()
            .name
    }
}

fn restas_conf(sb: &Sandbox, name: &str, port: u16) -> std::path::PathBuf {
    let registry = sb.path("systems/");
    fs::create_dir_all(&registry).unwrap();
    sb.conf(
        name,
        &format!(
            ";;; A restas-daemon conf, as restas-daemon.lisp loaded them.\n\
             (defparameter *name* {user})\n\
             (defparameter *pidfile* {pid})\n\
             (defparameter *fasldir* {fasl})\n\
             (defvar *basedir* {registry})\n\
             (defparameter *swankport* {port})\n\
             (defparameter *asdf-central-registry* (list (pathname *basedir*)))\n",
            user = lisp_string(&daemon_user()),
            pid = lisp_string(sb.path(&format!("run/{name}.pid")).to_str().unwrap()),
            fasl = lisp_string(sb.path("fasl/").to_str().unwrap()),
            registry = lisp_string(registry.to_str().unwrap()),
        ),
    )
}

/// Starts a conf, checks the swank daemon it makes, and stops it.
fn check_swank_daemon(sb: &Sandbox, conf: &Path, pid_file: &Path, port: u16) {
    let out = sb.run(conf, &["start"]);
    let pid = pid_in(&stdout(&out)).unwrap_or_else(|| panic!("{} {}", stdout(&out), stderr(&out)));
    assert_line(
        &out,
        0,
        &format!(
            "success started (pid = {pid} pid-file = {})",
            pid_file.display()
        ),
    );
    let reply = swank(
        port,
        "(:emacs-rex (swank:connection-info) \"COMMON-LISP-USER\" t 1)",
    );
    assert!(reply.contains(&format!(":pid {pid} ")), "{reply}");
    let reply = swank(
        port,
        "(:emacs-rex (swank:eval-and-grab-output \"(format nil \\\"~{~a~^ ~}\\\" asdf:*central-registry*)\") \"COMMON-LISP-USER\" t 2)",
    );
    assert!(
        reply.contains(&sb.path("systems/").display().to_string()),
        "{reply}"
    );
    let uid = nix::unistd::User::from_name(&daemon_user())
        .unwrap()
        .unwrap()
        .uid
        .to_string();
    assert_eq!(proc_status(pid, "Uid"), [uid.as_str(); 4].join("\t"));
    let fasl = sb.path("fasl");
    assert!(
        fs::read_dir(&fasl).unwrap().next().is_some(),
        "ASDF's cache is the fasl dir"
    );
    assert_eq!(sb.run(conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(pid));
}

/// A restas conf with *name*, *swankport* and *asdf-central-registry*
/// starts a swank daemon as its user, with its fasl dir; so does the plist
/// conf `migrate` prints for it.
#[test]
fn restas_conf_runs_as_is_and_migrated() {
    let sb = open_sandbox();
    let port = free_port();
    let conf = restas_conf(&sb, "blog", port);
    check_swank_daemon(&sb, &conf, &sb.path("run/blog.pid"), port);
    let meta = fs::metadata(sb.path("fasl")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        nix::unistd::User::from_name(&daemon_user())
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    );

    let out = sb.run(&conf, &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let migrated = sb.conf("migrated.conf", &stdout(&out));
    assert_eq!(sb.run(&migrated, &["check"]).status.code(), Some(0));
    check_swank_daemon(&sb, &migrated, &sb.path("run/blog.pid"), port);
}

/// *sites* on a machine without RESTAS: the start fails with ASDF's error.
#[test]
fn sites_without_restas_fail_with_the_lisp_error() {
    let sb = open_sandbox();
    let conf = sb.conf(
        "site.conf",
        &format!(
            "(defparameter *name* {})\n(defparameter *pidfile* {})\n(defparameter *fasldir* {})\n\
             (defparameter *sites* '((#:myblog \"blog.example.org\" 8080)))\n",
            lisp_string(&daemon_user()),
            lisp_string(sb.path("site.pid").to_str().unwrap()),
            lisp_string(sb.path("fasl/").to_str().unwrap()),
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_line(
        &out,
        1,
        &format!(
            "failed started - preload-error (pid-file = {})",
            sb.path("site.pid").display()
        ),
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("ERROR: Component :RESTAS not found\n"),
        "{err}"
    );
    assert!(!sb.path("site.pid").exists());
}

/// Any other top-level form is refused with its location; so is a value
/// the tool must read that is not a literal.
#[test]
fn restas_conf_errors_are_located() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "bad.conf",
        "(defparameter *name* \"x\")\n(setf *swankport* 4005)\n",
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: {}:2:1: expected (defparameter *var* value) or (defvar *var* value) in a restas-daemon conf \
             but found (setf *swankport* 4005); the tool does not evaluate other Lisp forms\n  |\n2 | (setf *swankport* 4005)\n  | ^^^^^^^^^^^^^^^^^^^^^^^\n",
            conf.display()
        )
    );
    let conf = sb.conf(
        "user.conf",
        "(defparameter *name* \"x\")\n(defparameter *user* (get-user))\n",
    );
    let out = sb.run(&conf, &["check"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).starts_with(&format!(
            "ERROR: {}:2:22: expected a string or nil as the value of *user* (the tool needs it before any Lisp runs) but found (get-user)",
            conf.display()
        )),
        "{}",
        stderr(&out)
    );
    let plist = sb.conf("plist.conf", "(:name \"x\")");
    let out = sb.run(&plist, &["migrate"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "ERROR: {} is not a restas-daemon conf: it has nothing to migrate\n",
            plist.display()
        )
    );
}

/// A site conf as production servers have them (RESTAS's own lisper.ru
/// conf among them): `#P` literals, paths relative to the directory the
/// init script runs from, a site system that uses RESTAS without declaring
/// it, the acceptor class in a string, a heap size. A stand-in RESTAS
/// system records each `restas:start` call.
#[test]
fn a_production_site_conf_runs_as_restas_daemon_ran_it() {
    let sb = open_sandbox();
    let port = free_port();
    let out_dir = sb.path("out");
    fs::create_dir_all(&out_dir).unwrap();
    let user = nix::unistd::User::from_name(&daemon_user())
        .unwrap()
        .unwrap();
    std::os::unix::fs::chown(&out_dir, Some(user.uid.as_raw()), None).unwrap();
    let started = out_dir.join("started");
    let system = |name: &str, asd: &str, lisp: &str| {
        let dir = sb.path(&format!("systems/{name}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{name}.asd")), asd).unwrap();
        fs::write(dir.join(format!("{name}.lisp")), lisp).unwrap();
    };
    system(
        "restas",
        "(asdf:defsystem \"restas\" :components ((:file \"restas\")))",
        &format!(
            "(defpackage #:restas (:use #:cl) (:export #:start #:*default-host-redirect*))\n\
             (in-package #:restas)\n\
             (defvar *default-host-redirect* nil)\n\
             (defun start (module &rest args)\n\
               (with-open-file (s {} :direction :output :if-exists :append :if-does-not-exist :create)\n\
                 (let ((*package* (find-package :keyword)) (*print-pretty* nil))\n\
                   (prin1 (list* module (sb-ext:dynamic-space-size) *default-pathname-defaults* args) s)\n\
                   (terpri s))))\n",
            lisp_string(started.to_str().unwrap())
        ),
    );
    system(
        "mysite",
        "(asdf:defsystem \"mysite\" :components ((:file \"mysite\")))",
        "(defpackage #:mysite (:use #:cl))\n\
         (in-package #:mysite)\n\
         (defclass site-acceptor () ())\n\
         (defun redirect () restas:*default-host-redirect*)\n",
    );
    let conf = sb.conf(
        "site.daemon",
        &format!(
            ";;; site.daemon\n\
             (defparameter *name* \"site\")\n\
             (defparameter *user* {user})\n\
             (defparameter *pidfile* #P{pid})\n\
             (defparameter *fasldir* #P{fasl})\n\
             (defparameter *dynamic-space-size* 600)\n\
             (defparameter *asdf-central-registry*\n  \
               (list (merge-pathnames \"systems/restas/\") (merge-pathnames \"systems/mysite/\")))\n\
             (defparameter *asdf-load-systems* '(#:mysite))\n\
             (defparameter *acceptor-class* \"mysite::site-acceptor\")\n\
             (defparameter *sites* '((#:mysite \"localhost\" {port})))\n",
            user = lisp_string(&user.name),
            pid = lisp_string(sb.path("run/site.pid").to_str().unwrap()),
            fasl = lisp_string(sb.path("fasl/").to_str().unwrap()),
        ),
    );
    let out = sb
        .command(&conf, &["start"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    let pid = pid_in(&stdout(&out)).unwrap_or_else(|| panic!("{} {}", stdout(&out), stderr(&out)));
    sb.track(pid);
    assert_line(
        &out,
        0,
        &format!(
            "success started (pid = {pid} pid-file = {})",
            sb.path("run/site.pid").display()
        ),
    );
    assert_eq!(
        fs::read_to_string(&started).unwrap(),
        format!(
            "(#:MYSITE {} #P{} :HOSTNAME \"localhost\" :PORT {port} :ACCEPTOR-CLASS MYSITE::SITE-ACCEPTOR)\n",
            600u64 << 20,
            lisp_string(&format!("{}/", sb.dir.path().display())),
        )
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
    assert!(!alive(pid));
}

/// A *user* restas-daemon derived from *name* is named as such.
#[test]
fn a_derived_user_is_named_as_derived() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "site.daemon",
        &format!(
            "(defparameter *name* \"no-such-site-user\")\n(defparameter *pidfile* #P{})\n",
            lisp_string(sb.path("s.pid").to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: unknown user \"no-such-site-user\" (*user* defaults to *name* \"no-such-site-user\" \
         in a restas-daemon conf): create it (useradd --system no-such-site-user) or set *user*\n"
    );
    assert!(!sb.path("s.pid").exists());
}

/// Of two wrong values the tool needs, the first in the file is reported.
#[test]
fn the_first_wrong_value_in_the_file_is_reported() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "site.daemon",
        "(defparameter *name* \"s\")\n(defparameter *fasldir* 12)\n(defparameter *pidfile* (pid-file))\n",
    );
    let out = sb.run(&conf, &["check"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).starts_with(&format!(
            "ERROR: {}:2:25: expected a non-empty string, #P\"...\" or nil as the value of *fasldir* \
             (the tool needs it before any Lisp runs) but found 12\n",
            conf.display()
        )),
        "{}",
        stderr(&out)
    );
}
