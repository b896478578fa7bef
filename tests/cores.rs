//! Saved cores: `build-core` loads `:preload` into a fresh Lisp and saves
//! its image; `start` runs the daemon on it, without loading anything
//! again; an `:auto` core is rebuilt when a source changed, an explicit
//! one is used with a warning; a failed build keeps the previous core; as
//! root the core is root's and the daemon, as its `:user`, only reads it.
//! A small ASDF system of the sandbox counts how often it is loaded.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::util::*;

/// A system `greet` in `sb/sys/greet/` whose every load appends a line to
/// `sb/loads`, and a conf preloading it whose `:main-function` writes
/// `(greet:hello)` to `sb/said`; `extra` is spliced into the conf.
fn site(sb: &Sandbox, extra: &str) -> PathBuf {
    let dir = sb.path("sys/greet");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("greet.asd"),
        "(asdf:defsystem \"greet\" :components ((:file \"greet\")))",
    )
    .unwrap();
    write_greet(sb, "v1");
    let out = sb.path("out");
    fs::create_dir_all(&out).unwrap();
    if root() && extra.contains(":user") {
        let user = test_user();
        for path in [out.as_path(), &sb.path("sys"), &dir] {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), None).unwrap();
        }
    }
    sb.conf(
        "site.conf",
        &format!(
            "(:name \"site\" :pid-file \"site.pid\" {extra}\n \
             :environment (\"CL_SOURCE_REGISTRY={sys}//\")\n \
             :fasl-dir {fasl}\n \
             :preload (:greet)\n \
             :main-function #.(lambda ()\n\
               (with-open-file (s {said} :direction :output :if-exists :supersede)\n\
                 (write-string (funcall (find-symbol \"HELLO\" \"GREET\")) s))))",
            sys = sb.path("sys").display(),
            fasl = lisp_string(sb.path("out/fasl/").to_str().unwrap()),
            said = lisp_string(out.join("said").to_str().unwrap()),
        ),
    )
}

fn write_greet(sb: &Sandbox, version: &str) {
    fs::write(
        sb.path("sys/greet/greet.lisp"),
        format!(
            "(defpackage #:greet (:use #:cl) (:export #:hello))\n\
             (in-package #:greet)\n\
             (with-open-file (s {} :direction :output :if-exists :append :if-does-not-exist :create)\n\
               (write-line \"loaded\" s))\n\
             (defun hello () \"hello {version}\")\n",
            lisp_string(sb.path("out/loads").to_str().unwrap())
        ),
    )
    .unwrap();
}

fn loads(sb: &Sandbox) -> usize {
    line_count(&sb.path("out/loads"))
}

/// Starts the conf, returns what its main function said, and stops it.
fn run_once(sb: &Sandbox, conf: &Path) -> (String, String, String) {
    let _ = fs::remove_file(sb.path("out/said"));
    let out = sb.run(conf, &["start"]);
    let pid = pid_in(&stdout(&out)).unwrap_or_else(|| panic!("{} {}", stdout(&out), stderr(&out)));
    let said = fs::read_to_string(sb.path("out/said")).unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let uid = proc_status(pid, "Uid");
    assert_eq!(sb.run(conf, &["stop"]).status.code(), Some(0));
    (said, cmdline.replace('\0', " "), uid)
}

/// Removes an `:auto` core (in the tool's cache, outside the sandbox)
/// however the test ends.
struct AutoCore(Option<PathBuf>);

impl Drop for AutoCore {
    fn drop(&mut self) {
        if let Some(core) = &self.0 {
            let _ = fs::remove_file(core);
            let _ = fs::remove_file(format!("{}.manifest", core.display()));
        }
    }
}

fn built_path(out: &std::process::Output) -> PathBuf {
    let line = stdout(out);
    let rest = line
        .strip_prefix("core built: ")
        .unwrap_or_else(|| panic!("{line} {}", stderr(out)));
    PathBuf::from(rest.split(" (").next().unwrap())
}

/// An explicit core: built once, the daemon starts on it and has the
/// system without loading it; a changed source makes start warn and run
/// the old code; a failing preload keeps the core and says why.
#[test]
fn a_daemon_runs_on_its_saved_core() {
    let sb = open_sandbox();
    let core = sb.path("site.core");
    let conf = site(
        &sb,
        &format!(":core {}", lisp_string(core.to_str().unwrap())),
    );
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "the core file {} does not exist: make it with",
            core.display()
        )),
        "{}",
        stderr(&out)
    );
    let out = sb.run(&conf, &["build-core"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(built_path(&out), core);
    assert_eq!(loads(&sb), 1, "built: loaded once");
    let (said, cmdline, _) = run_once(&sb, &conf);
    assert_eq!(said, "hello v1");
    assert!(
        cmdline.starts_with(&format!("sbcl --core {} ", core.display())),
        "{cmdline}"
    );
    assert_eq!(loads(&sb), 1, "the daemon did not load it again");
    let check = stdout(&sb.run(&conf, &["check"]));
    assert!(
        check.ends_with(&format!(";; core: {} (fresh)\n", core.display())),
        "{check}"
    );

    write_greet(&sb, "v2");
    let out = sb.run(&conf, &["start"]);
    sb.track(started_pid(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "WARNING: the core {} is stale ({} was changed): the daemon runs what it was built \
             with; rebuild it with build-core\n",
            core.display(),
            sb.path("sys/greet/greet.lisp").display()
        )
    );
    assert_eq!(fs::read_to_string(sb.path("out/said")).unwrap(), "hello v1");
    let status = stdout(&sb.run(&conf, &["status", "-v"]));
    assert!(
        status.contains(&format!(
            "\n  core:       {} (stale: {} was changed)\n",
            core.display(),
            sb.path("sys/greet/greet.lisp").display()
        )),
        "{status}"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    let before = fs::metadata(&core).unwrap();
    fs::write(sb.path("sys/greet/greet.lisp"), "(defun broken (").unwrap();
    let out = sb.run(&conf, &["build-core"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "ERROR: no core was saved (a previous one is kept): COMPILE-FILE-ERROR while compiling"
        ),
        "{}",
        stderr(&out)
    );
    let after = fs::metadata(&core).unwrap();
    assert_eq!(
        (after.ino(), after.len()),
        (before.ino(), before.len()),
        "the old core stays"
    );
}

/// `:core :auto`: built at the first start, used as it is while fresh,
/// rebuilt (with the new code) when a source changed. As root, the core
/// is root's (0644) in /var/cache/daemonization, and the daemon of the
/// `:user` runs on it.
#[test]
fn an_auto_core_is_built_and_rebuilt_when_stale() {
    let sb = open_sandbox();
    let user = if root() { ":user \"dztest\"" } else { "" };
    let conf = site(&sb, &format!(":core :auto {user}"));
    let out = sb.run(&conf, &["build-core"]);
    let auto = AutoCore(Some(built_path(&out)));
    let core = auto.0.clone().unwrap();
    if root() {
        assert!(
            core.starts_with("/var/cache/daemonization/"),
            "{}",
            core.display()
        );
        let meta = fs::metadata(&core).unwrap();
        // Root's, readable by the daemon's group only: the user cannot
        // write it, and nobody else reads what its preload read.
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (0, test_user().gid.as_raw(), 0o640)
        );
    }
    let (said, cmdline, uid) = run_once(&sb, &conf);
    assert_eq!(said, "hello v1");
    assert!(
        cmdline.contains(&format!("--core {}", core.display())),
        "{cmdline}"
    );
    if root() {
        let dztest = test_user().uid.to_string();
        assert_eq!(
            uid,
            [dztest.as_str(); 4].join("\t"),
            "the :user runs on root's core"
        );
    }
    assert_eq!(loads(&sb), 1);
    write_greet(&sb, "v2");
    let (said, _, _) = run_once(&sb, &conf);
    assert_eq!(said, "hello v2", "rebuilt before the start");
    assert_eq!(loads(&sb), 2, "loaded once more, by the rebuild");
    let (said, _, _) = run_once(&sb, &conf);
    assert_eq!((said.as_str(), loads(&sb)), ("hello v2", 2), "fresh again");
}

/// A copy of a preloaded system added where ASDF looks first (earlier in
/// the source registry) makes an `:auto` core stale, though no file the
/// core holds changed: the rebuilt core has the new copy. Files that are
/// no systems, added where ASDF looks, leave it fresh.
#[test]
fn a_shadowing_system_makes_an_auto_core_stale() {
    let sb = Sandbox::new();
    let system = |registry: &str, copy: &str| {
        let dir = sb.path(registry).join("shadowy");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("shadowy.asd"),
            "(asdf:defsystem \"shadowy\" :components ((:file \"shadowy\")))",
        )
        .unwrap();
        fs::write(
            dir.join("shadowy.lisp"),
            format!("(defun cl-user::which-copy () \"{copy}\")"),
        )
        .unwrap();
    };
    fs::create_dir_all(sb.path("first")).unwrap();
    system("second", "the second");
    fs::create_dir_all(sb.path("second/shadowy/log")).unwrap();
    let said = sb.path("said");
    let conf = sb.conf(
        "shadow.conf",
        &format!(
            "(:pid-file \"shadow.pid\" :name \"shadow\" :core :auto :preload (:shadowy)\n \
             :environment (\"CL_SOURCE_REGISTRY=(:source-registry (:tree \\\"{first}/\\\") \
                           (:tree \\\"{second}/\\\") :ignore-inherited-configuration)\")\n \
             :fasl-dir {fasl}\n \
             :main-function #.(lambda ()\n\
               (with-open-file (s {said} :direction :output :if-exists :supersede)\n\
                 (write-string (cl-user::which-copy) s))))",
            first = sb.path("first").display(),
            second = sb.path("second").display(),
            fasl = lisp_string(sb.path("fasl/").to_str().unwrap()),
            said = lisp_string(said.to_str().unwrap()),
        ),
    );
    let _core = AutoCore(Some(built_path(&sb.run(&conf, &["build-core"]))));
    let start_and_stop = || {
        let out = sb.run(&conf, &["start"]);
        started_pid(&out);
        assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
        fs::read_to_string(&said).unwrap()
    };
    assert_eq!(start_and_stop(), "the second");
    // A file that is no system (a log, notes) changes nothing.
    fs::write(sb.path("first/notes.txt"), "not a system").unwrap();
    fs::write(sb.path("second/shadowy/log/today.log"), "a line").unwrap();
    let check = stdout(&sb.run(&conf, &["check"]));
    assert!(check.contains(" (fresh)\n"), "{check}");
    system("first", "the first");
    let check = stdout(&sb.run(&conf, &["check"]));
    assert!(
        check.contains(&format!(
            "(stale: {}/ was changed)\n",
            sb.path("first").display()
        )),
        "{check}"
    );
    assert_eq!(start_and_stop(), "the first", "rebuilt before the start");
}

/// A daemon started on a core has collected the garbage of its start
/// before it said it was ready: objects `:main-function` made and dropped
/// are gone (their finalizers ran) though nothing allocates after it.
#[test]
fn a_daemon_on_a_core_has_collected_its_start() {
    let sb = Sandbox::new();
    let collected = sb.path("collected");
    let conf = sb.conf(
        "gc.conf",
        &format!(
            "(:pid-file \"gc.pid\" :name \"gc\" :core \"gc.core\"\n \
             :main-function #.(lambda ()\n\
               (dotimes (i 50)\n\
                 (sb-ext:finalize (make-array 1000)\n\
                                  (lambda () (with-open-file (s {} :direction :output\n\
                                                                 :if-exists :append :if-does-not-exist :create)\n\
                                               (print :gone s)))\n\
                                  :dont-save t))))",
            lisp_string(collected.to_str().unwrap())
        ),
    );
    assert_eq!(
        built_path(&sb.run(&conf, &["build-core"])),
        sb.path("gc.core")
    );
    started_pid(&sb.run(&conf, &["start"]));
    assert!(
        wait_until(30, || collected.exists()),
        "no finalizer ran: the start's garbage was not collected"
    );
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A stop right after a start on a core (which collects garbage just
/// before it is ready) ends the daemon on the first signal: SBCL 2.2.9
/// stopped just after a collection of its main thread hung (or corrupted
/// its heap) when the collection came after the readiness.
#[test]
fn a_stop_right_after_a_start_on_a_core_ends_the_daemon() {
    let sb = Sandbox::new();
    let conf = sb.conf(
        "quick.conf",
        "(:pid-file \"quick.pid\" :name \"quick\" :core \"quick.core\" :output \"quick.log\"\n \
         :main-function #.(lambda () t))",
    );
    assert_eq!(
        built_path(&sb.run(&conf, &["build-core"])),
        sb.path("quick.core")
    );
    for round in 0..20 {
        let pid = started_pid(&sb.run(&conf, &["start"]));
        let out = sb.run(&conf, &["stop", "--retry", "USR1/10"]);
        assert_eq!(
            stdout(&out),
            format!(
                "success stopped (pid = {pid} pid-file = {})\n",
                sb.path("quick.pid").display()
            ),
            "round {round}: {}",
            stderr(&out)
        );
    }
    let log = fs::read_to_string(sb.path("quick.log")).unwrap();
    assert_eq!(
        log,
        "Stop quick daemon (signal 10)\n".repeat(20),
        "no fault, no debugger"
    );
}

/// As root, the files and directories a `:user`'s builder names are looked
/// at with that user's power: a builder that names ones only root can see
/// gets nothing of them into the manifest (whose changes would otherwise
/// tell the user, by rebuilds, when root's files changed).
#[test]
fn a_users_builder_cannot_have_root_list_a_directory() {
    assert!(
        root(),
        "the core's builder runs as a :user only for root: run as root (CI does)"
    );
    // The conf names dztest: made first (on a fresh machine no other test
    // may have made it yet).
    test_user();
    let sb = open_sandbox();
    let secret = sb.path("secret");
    let open = sb.path("open");
    fs::create_dir(&secret).unwrap();
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    fs::write(secret.join("file"), "root's").unwrap();
    let say = |line: String| {
        format!(
            "#.(lambda () (funcall (intern \"SAY\" \"DAEMONIZATION-BOOTSTRAP\") {}))",
            lisp_string(&line)
        )
    };
    let conf = sb.conf(
        "lister.conf",
        &format!(
            "(:pid-file \"lister.pid\" :name \"lister\" :user \"dztest\" :core :auto\n \
             :preload ({} {} {}))",
            say(format!("searched {}/", secret.display())),
            say(format!("source {}/file", secret.display())),
            say(format!("searched {}/", open.display()))
        ),
    );
    let out = sb.run(&conf, &["build-core"]);
    let core = AutoCore(Some(built_path(&out)));
    let manifest =
        fs::read_to_string(format!("{}.manifest", core.0.as_ref().unwrap().display())).unwrap();
    assert!(
        manifest.contains(&format!(" {}/\n", open.display())),
        "{manifest}"
    );
    assert!(
        !manifest.lines().any(|l| {
            (l.starts_with("searched ") || l.starts_with("source "))
                && l.contains(&secret.display().to_string())
        }),
        "{manifest}"
    );
}

/// GNU CLISP saves its memory image (`ext:saveinitmem`) and runs on it
/// (`-M`); ECL says it has none.
#[test]
fn clisp_saves_a_core_and_ecl_says_it_cannot() {
    let sb = Sandbox::new();
    let lib = sb.conf("lib.lisp", "(defun cl-user::from-lib () \"from the core\")");
    let said = sb.path("said");
    let conf = sb.conf(
        "c.conf",
        &format!(
            "(:pid-file \"c.pid\" :lisp :clisp :preload ({lib}) :core \"c.mem\"\n \
             :main-function #.(lambda () (with-open-file (s {said} :direction :output)\n\
               (write-string (cl-user::from-lib) s))))",
            lib = lisp_string(lib.to_str().unwrap()),
            said = lisp_string(said.to_str().unwrap())
        ),
    );
    let out = sb.run(&conf, &["build-core"]);
    assert_eq!(built_path(&out), sb.path("c.mem"));
    fs::remove_file(&lib).unwrap();
    let out = sb.run(&conf, &["start"]);
    started_pid(&out);
    assert_eq!(fs::read_to_string(&said).unwrap(), "from the core");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));

    let ecl = sb.conf("e.conf", "(:pid-file \"e.pid\" :lisp :ecl :core :auto)");
    let out = sb.run(&ecl, &["start"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        stderr(&out),
        "ERROR: ECL cannot save its image: it has no saved cores; run it without :core \
         (or on SBCL or GNU CLISP)\n"
    );
}

/// `restart` of a conf with a stale `:auto` core rebuilds the core while
/// the old daemon still serves, then restarts on the new one: the new
/// code's load (in the build) sees the old daemon alive.
#[test]
fn restart_rebuilds_the_core_before_it_stops_the_daemon() {
    let sb = open_sandbox();
    let conf = site(&sb, ":core :auto");
    let out = sb.run(&conf, &["build-core"]);
    let _auto = AutoCore(Some(built_path(&out)));
    let old = started_pid(&sb.run(&conf, &["start"]));
    // The new code notes, as it is loaded, whether the old daemon lives.
    fs::write(
        sb.path("sys/greet/greet.lisp"),
        format!(
            "(defpackage #:greet (:use #:cl) (:export #:hello))\n\
             (in-package #:greet)\n\
             (with-open-file (s {loads} :direction :output :if-exists :append :if-does-not-exist :create)\n\
               (write-line (if (probe-file \"/proc/{old}/status\") \"loaded while the old daemon served\" \"loaded\") s))\n\
             (defun hello () \"hello v2\")\n",
            loads = lisp_string(sb.path("out/loads").to_str().unwrap())
        ),
    )
    .unwrap();
    let out = sb.run(&conf, &["restart"]);
    let new = started_pid(&out);
    assert_ne!(new, old);
    assert!(!alive(old));
    let loads = fs::read_to_string(sb.path("out/loads")).unwrap();
    assert_eq!(
        loads.lines().last(),
        Some("loaded while the old daemon served"),
        "{loads}"
    );
    assert_eq!(fs::read_to_string(sb.path("out/said")).unwrap(), "hello v2");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// A restas-daemon conf with `*core*`: its loading part (registry,
/// Quicklisp, swank, RESTAS, `*asdf-load-systems*`) is the implied
/// preload, saved in the core; the daemon starts on it without loading.
#[test]
fn a_restas_conf_runs_on_a_core_of_its_systems() {
    let sb = open_sandbox();
    site(&sb, "");
    let core = sb.path("site.core");
    let conf = sb.conf(
        "site.daemon",
        &format!(
            "(defparameter *name* \"site\")\n\
             (defparameter *user* {user})\n\
             (defparameter *pidfile* #P{pid})\n\
             (defparameter *fasldir* #P{fasl})\n\
             (defparameter *core* {core})\n\
             (defparameter *asdf-central-registry* (list (merge-pathnames \"sys/greet/\")))\n\
             (defparameter *asdf-load-systems* '(#:greet))\n",
            user = lisp_string(
                &nix::unistd::User::from_uid(nix::unistd::getuid())
                    .unwrap()
                    .unwrap()
                    .name
            ),
            pid = lisp_string(sb.path("site.pid").to_str().unwrap()),
            fasl = lisp_string(sb.path("out/fasl/").to_str().unwrap()),
            core = lisp_string(core.to_str().unwrap()),
        ),
    );
    let out = sb
        .command(&conf, &["build-core"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert_eq!(built_path(&out), core);
    assert_eq!(loads(&sb), 1);
    let out = sb
        .command(&conf, &["start"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    let pid = started_pid(&out);
    sb.track(pid);
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.contains(&format!("--core\0{}\0", core.display())),
        "{cmdline}"
    );
    assert_eq!(loads(&sb), 1, "the systems come from the core");
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}
