//! What a new user and a Debian admin meet in their first hour: a system
//! user's first site, the reason words of a failed start.

use std::os::unix::fs::MetadataExt as _;

use crate::util::*;

/// A `:user` made by `useradd --system` (home /nonexistent) gets a fasl
/// cache the tool makes for it (/var/cache/daemonization/fasl/NAME/, the
/// user's alone: 0700), so a `:preload` of a system compiles and the site
/// starts; the cache shows in `check`.
#[test]
fn a_system_users_first_site_starts() {
    let user = system_user();
    let sb = open_sandbox();
    let conf = sb.conf(
        "sys.conf",
        "(:pid-file \"sys.pid\" :user \"dzsystem\" :preload (:alexandria)\n \
         :main-function #.(lambda () (alexandria:iota 3)))",
    );
    let cache = std::path::Path::new("/var/cache/daemonization/fasl/dzsystem");
    // A cache an earlier version made open to all is narrowed.
    if cache.exists() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = sb.run(&conf, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sb.track(started_pid(&out));
    let meta = std::fs::metadata(cache).unwrap();
    assert_eq!(meta.uid(), user.uid.as_raw());
    assert_eq!(meta.mode() & 0o777, 0o700, "the user's alone");
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

/// `list` after the Lisp API's starts and stops (each call a new
/// temporary property-list conf): the running daemon is listed by its
/// name though its conf is gone; once stopped, through another temporary
/// conf, nothing is left; a record whose conf and pid file are both gone
/// is pruned.
#[test]
fn list_shows_only_what_is_real() {
    let sb = Sandbox::new();
    let text = "(:name \"api-site\" :pid-file \"api.pid\" :main-function #.(lambda () t))";
    let first = sb.conf("call-1.conf", text);
    let pid = started_pid(&sb.run(&first, &["start"]));
    sb.track(pid);
    std::fs::remove_file(&first).unwrap();
    let list = stdout(&run(sb.dir.path(), &["list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("api-site ") && l.contains("conf gone")),
        "{list}"
    );
    let second = sb.conf("call-2.conf", text);
    assert_eq!(sb.run(&second, &["stop"]).status.code(), Some(0));
    std::fs::remove_file(&second).unwrap();
    assert_eq!(
        stdout(&run(sb.dir.path(), &["list"])),
        "NAME  PID  STATE  UPTIME  MEMORY  CONF\n"
    );
    // A daemon that died, its pid file and conf removed by hand.
    let third = sb.conf(
        "gone.conf",
        "(:name \"gone\" :pid-file \"gone.pid\" :main-function #.(lambda () t))",
    );
    let pid = started_pid(&sb.run(&third, &["start"]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(30, || !alive(pid)));
    std::fs::remove_file(&third).unwrap();
    std::fs::remove_file(sb.pid_file("gone.pid")).unwrap();
    let list = stdout(&run(sb.dir.path(), &["list"]));
    assert!(!list.contains("gone"), "{list}");
    let records = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("record-")
        })
        .count();
    assert_eq!(records, 0, "the records were removed");
}

/// Runs `shell`'s completion of `words` (the last one being completed)
/// in `dir`, and returns what it offers, sorted (a directory without its
/// `/`). Bash's runs as bash runs it (COMP_WORDS, COMPREPLY); fish's
/// through `complete -C`, with only this script loaded. In zsh, its own
/// completion builtins stand in: `compadd` prints the words that fit
/// the word being completed, and `_files` prints what it was asked for
/// (`files(*.conf(-.))`, `files(-/)`): zsh's file completion is zsh's, the
/// grammar is the script's.
fn complete(shell: &str, dir: &std::path::Path, words: &[&str]) -> Vec<String> {
    let script = stdout(&run(dir, &["completions", shell]));
    let file = dir.join(format!("completion.{shell}"));
    std::fs::write(&file, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = match shell {
        "bash" => format!(
            "source {}; COMP_WORDS=(daemonization {}); COMP_CWORD={}; _daemonization; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            quoted.join(" "),
            words.len()
        ),
        "zsh" => format!(
            "compadd() {{ local w; [[ $1 == -- ]] && shift; \
               for w in \"$@\"; do [[ $w == ${{PREFIX}}* ]] && print -r -- $w; done }}; \
             _files() {{ print -r -- \"files(${{@[-1]}})\" }}; compdef() {{ }}; \
             source {}; words=(daemonization {}); CURRENT={}; PREFIX={}; _daemonization",
            file.display(),
            quoted.join(" "),
            words.len() + 1,
            quoted.last().unwrap()
        ),
        _ => format!(
            "set -g fish_complete_path; source {}; complete -C \"daemonization {}\"",
            file.display(),
            words.join(" ")
        ),
    };
    let mut command = std::process::Command::new(shell);
    if shell != "bash" {
        command.arg(if shell == "zsh" { "-f" } else { "--no-config" });
    }
    let out = command
        .current_dir(dir)
        .arg("-c")
        .arg(program)
        .output()
        .unwrap_or_else(|e| panic!("{shell} runs (apt-get install {shell}): {e}"));
    // (zsh's last test may be false: what it printed is what counts.)
    assert!(
        out.status.success() || shell == "zsh" && out.stderr.is_empty(),
        "{shell}: {}",
        stderr(&out)
    );
    let mut offered: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            let word = l.split('\t').next().unwrap();
            word.strip_suffix('/').unwrap_or(word).to_string()
        })
        .filter(|w| !w.is_empty())
        .collect();
    offered.sort();
    offered
}

/// The completions of bash, zsh and fish know the grammar: conf files and
/// directories (and list, help, info, completions) first, never a command
/// there; then the commands valid for that argument (fewer for a
/// directory); then the command's options; `--print`'s styles and
/// `completions`' shells.
#[test]
fn completions_know_the_grammar() {
    let sb = Sandbox::new();
    sb.conf("site.conf", "(:pid-file \"site.pid\")");
    sb.conf("notes.txt", "");
    std::fs::create_dir(sb.path("confs")).unwrap();
    let dir = sb.dir.path();
    for shell in ["bash", "zsh", "fish"] {
        needs_program(shell, shell);
        let complete = |words: &[&str]| complete(shell, dir, words);
        let first = complete(&[""]);
        // (logging.conf is the tests' logging conf, in the same
        // directory; completion.* are the scripts.)
        let files: &[&str] = match shell {
            "zsh" => &["files(*.conf(-.))", "files(-/)"],
            _ => &["confs", "logging.conf", "site.conf"],
        };
        let mut expected: Vec<&str> = ["completions", "help", "info", "list"].to_vec();
        expected.extend(files);
        expected.sort();
        assert_eq!(first, expected, "{shell}: no notes.txt, no command");
        assert_eq!(
            complete(&["site.conf", "st"]),
            ["start", "status", "stop"],
            "{shell}"
        );
        let commands = complete(&["site.conf", ""]);
        assert!(
            commands.contains(&"eval".to_string()) && commands.contains(&"repl".to_string()),
            "{shell}: {commands:?}"
        );
        assert!(
            !commands.contains(&"list".to_string()) && !commands.contains(&"help".to_string()),
            "{shell}: {commands:?}"
        );
        let for_dir = complete(&["confs", ""]);
        assert!(
            for_dir.contains(&"status".to_string()) && !for_dir.contains(&"reload".to_string()),
            "{shell}: {for_dir:?}"
        );
        let log = complete(&["site.conf", "log", "--"]);
        assert!(
            log.contains(&"--lines".to_string()) && log.contains(&"--raw".to_string()),
            "{shell}: {log:?}"
        );
        assert!(!log.contains(&"--retry".to_string()), "{shell}: {log:?}");
        assert_eq!(
            complete(&["--print", ""]),
            ["json", "none", "plist", "simple"],
            "{shell}"
        );
        assert_eq!(
            complete(&["--print", "json", "site.conf", "rel"]),
            ["reload"],
            "{shell}"
        );
        assert!(
            complete(&["completions", ""]).contains(&"bash".to_string()),
            "{shell}"
        );
        assert_eq!(complete(&["help", ""]), ["keys"], "{shell}");
    }
}

/// The man pages are the tool's own (`help man`, `help man-conf`, made
/// from its tables); doc/ holds them for the package, equal to what the
/// tool prints (run `target/debug/daemonization help man > doc/daemonization.1`
/// and `help man-conf > doc/daemonization.conf.5` after changing a table).
/// Rendered by man(1), they have their sections, every command and key.
#[test]
fn the_man_pages_are_made_from_the_tables() {
    needs_program("man", "man-db");
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("doc");
    for (topic, file) in [
        ("man", "daemonization.1"),
        ("man-conf", "daemonization.conf.5"),
    ] {
        let printed = stdout(&run(std::path::Path::new("/"), &["help", topic]));
        assert_eq!(
            std::fs::read_to_string(doc.join(file)).unwrap(),
            printed,
            "doc/{file} is not what `daemonization help {topic}` prints: regenerate it"
        );
    }
    let render = |file: &str| {
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(doc.join(file))
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let one = render("daemonization.1");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "OPTIONS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            one.contains(&format!("\n{section}\n")),
            "no {section} in {one}"
        );
    }
    for command in ["start", "eval", "repl", "build-core", "list"] {
        assert!(one.contains(command), "{command}");
    }
    assert!(
        one.contains("daemonization [OPTIONS] CONF|DIRECTORY COMMAND"),
        "{one}"
    );
    let five = render("daemonization.conf.5");
    for key in [
        ":pid-file",
        ":main-function",
        ":listen",
        ":control",
        ":watchdog",
    ] {
        assert!(five.contains(key), "{key}");
    }
    assert!(
        five.contains("\nKEYS\n") && five.contains("\nEXAMPLE\n"),
        "{five}"
    );
}

/// The README's walk-through conf (conf-examples/site.conf, shown there
/// whole) starts a real Hunchentoot site as its `:user` that answers, and
/// `restart` replaces it while it serves.
#[test]
fn the_walk_through_site_serves() {
    test_user();
    let sb = open_sandbox();
    let port = free_port();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf-examples/site.conf"
    ))
    .unwrap();
    let body: String = example
        .lines()
        .filter(|l| !l.starts_with(";;;"))
        .map(|l| format!("   {l}\n"))
        .collect();
    assert!(
        readme.contains(&body),
        "the README shows conf-examples/site.conf whole"
    );
    let fasl = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fasl-hunchentoot-site/");
    let conf = sb.example(
        "site.conf",
        &[
            (":user \"site\"", ":user \"dztest\""),
            (":port 8080", &format!(":port {port}")),
            (
                ":preload (:hunchentoot)",
                &format!(
                    ":preload (:hunchentoot) :fasl-dir {}",
                    lisp_string(fasl.to_str().unwrap())
                ),
            ),
        ],
    );
    let out = sb.run(&conf, &["--timeout", "300", "start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sb.track(started_pid(&out));
    let get = || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        use std::io::{Read as _, Write as _};
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        Some(reply)
    };
    let reply = get().expect("the site answers");
    assert!(reply.ends_with("Hello from SBCL\n"), "{reply}");
    let out = sb.run(&conf, &["restart"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(get().is_some_and(|r| r.ends_with("Hello from SBCL\n")));
    assert_eq!(sb.run(&conf, &["stop"]).status.code(), Some(0));
}

/// Every message of the README's "The common mistakes" is the tool's,
/// whole, for the mistake it names.
#[test]
fn the_common_mistakes_read_as_the_readme_says() {
    let sb = Sandbox::new();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## The common mistakes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the section");
    let messages: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("- "))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    let mistakes: [(&str, &[&str]); 5] = [
        ("(:pid-fil \"x\")", &["check"]),
        (
            "(:name \"x\"\n :main-function #.(lambda () (start))\n   (sb-thread:join-thread t))",
            &["check"],
        ),
        ("", &["check"]),
        (
            "(:pid-file \"p.pid\" :preload (:no-such-system))",
            &["start"],
        ),
        (
            "(:pid-file \"h.pid\" :listen ((:name \"http\" :port 8080)) :ready (:port 8080))",
            &["check"],
        ),
    ];
    assert_eq!(messages.len(), mistakes.len(), "{messages:?}");
    for (i, (message, (text, args))) in messages.iter().zip(mistakes).enumerate() {
        let out = match text.is_empty() {
            // The missing conf: the path the README names.
            true => run(sb.dir.path(), &["/etc/daemonization/sit.conf", args[0]]),
            false => sb.run(&sb.conf(&format!("m{i}.conf"), text), args),
        };
        let said = format!("{}{}", stdout(&out), stderr(&out));
        let message = message.replace(
            "(...)",
            &format!("(pid-file = {})", sb.pid_file("p.pid").display()),
        );
        assert!(said.contains(&message), "{message}\n---\n{said}");
    }
}
