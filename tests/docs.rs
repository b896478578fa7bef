//! Every `$ ` example of the manual (doc/manual.md) is run here as a shell
//! runs it, on a stand-in for the machine the manual describes (a sandbox
//! with its own `/etc/daemonization`, `/run/daemonization` and `/var/log`),
//! and what it prints must have the shape the manual shows: the same
//! words, lines and punctuation, any number where the manual has a number.
//! An example no scenario here runs fails `every_example_is_run`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

/// An example: its command line (after `$ `) and the lines shown after it.
struct Example {
    command: String,
    shown: String,
}

/// The manual's examples: an indented line `$ COMMAND`, then the indented
/// lines up to the next `$ ` or the end of the block.
fn examples() -> Vec<Example> {
    let manual =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/manual.md"))
            .unwrap();
    let mut found: Vec<Example> = Vec::new();
    let mut open = false;
    for line in manual.lines() {
        match line.strip_prefix("    ") {
            Some(rest) if rest.starts_with("$ ") => {
                found.push(Example {
                    command: rest[2..].to_string(),
                    shown: String::new(),
                });
                open = true;
            }
            Some(rest) if open => {
                let last = found.last_mut().unwrap();
                last.shown.push_str(rest);
                last.shown.push('\n');
            }
            _ => open = false,
        }
    }
    found
}

/// What the manual shows after `command`.
fn shown(command: &str) -> String {
    examples()
        .into_iter()
        .find(|e| e.command == command)
        .unwrap_or_else(|| panic!("the manual has no example `$ {command}`"))
        .shown
}

/// A text's shape: a hash (16 hexadecimal digits) is `H`, each run of
/// digits `#`, a duration (`2h 5m 3s`, `3s`) `D`, runs of blanks one
/// space; lines are trimmed.
fn shape(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = unhash(line);
        let mut digits = String::new();
        let mut last = None;
        for c in line.chars() {
            if c.is_ascii_digit() {
                if last != Some('#') {
                    digits.push('#');
                }
                last = Some('#');
            } else {
                digits.push(c);
                last = Some(c);
            }
        }
        // A duration's words (`#h`, `(#h`, `#s)`) become one `D`, its
        // parentheses kept.
        let mut collapsed: Vec<String> = Vec::new();
        let mut in_duration = false;
        for word in digits.split_whitespace() {
            let bare = word.trim_start_matches('(').trim_end_matches(')');
            let unit = matches!(bare, "#d" | "#h" | "#m" | "#s" | "#ms" | "#us");
            let (open, close) = (word.starts_with('('), word.ends_with(')'));
            match (unit, in_duration) {
                (true, true) => {
                    if close {
                        collapsed.last_mut().unwrap().push(')');
                    }
                }
                (true, false) => collapsed.push(format!(
                    "{}D{}",
                    if open { "(" } else { "" },
                    if close { ")" } else { "" }
                )),
                (false, _) => collapsed.push(word.to_string()),
            }
            in_duration = unit && !close;
        }
        out.push_str(&collapsed.join(" "));
        out.push('\n');
    }
    out
}

/// `line` with each run of exactly 16 hexadecimal digits made `H`.
fn unhash(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    while at < chars.len() {
        let run = chars[at..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        let alone = at == 0 || !chars[at - 1].is_ascii_alphanumeric();
        if run == 16 && alone {
            out.push('H');
            at += run;
        } else {
            out.push(chars[at]);
            at += 1;
        }
    }
    out
}

/// The machine the manual describes, in a sandbox: `etc` stands for
/// /etc/daemonization (the examples' working directory), `run` for
/// /run/daemonization (the pid directory), `log` for /var/log.
struct Machine {
    sb: Sandbox,
    etc: PathBuf,
    run: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        Machine::on(Sandbox::new())
    }

    /// On a sandbox others can enter (for daemons of the test user).
    fn on(sb: Sandbox) -> Machine {
        let (etc, run) = (sb.path("etc"), sb.path("run"));
        for dir in [&etc, &run, &sb.path("log"), &sb.path("systemd")] {
            std::fs::create_dir(dir).unwrap();
        }
        Machine { sb, etc, run }
    }

    /// The manual's paths, as this machine has them.
    fn here(&self, text: &str) -> String {
        let dir = self.sb.dir.path().display().to_string();
        let cgroups =
            cgroup_hierarchy().map_or("/sys/fs/cgroup".into(), |h| h.display().to_string());
        text.replace("/etc/daemonization", &format!("{dir}/etc"))
            .replace("/sys/fs/cgroup/", &format!("{cgroups}/"))
            .replace("/run/daemonization", &format!("{dir}/run"))
            .replace("/var/log", &format!("{dir}/log"))
    }

    /// A conf in `etc`, its paths the manual's.
    fn conf(&self, name: &str, text: &str) -> PathBuf {
        let path = self.etc.join(name);
        std::fs::write(&path, self.here(text)).unwrap();
        path
    }

    /// The tool on a conf of `etc`, as the tests run it.
    fn tool(&self, conf: &str, args: &[&str]) -> std::process::Output {
        let out = Command::new(bin())
            .arg(self.etc.join(conf))
            .args(args)
            .current_dir(&self.etc)
            .env("DAEMONIZATION_PID_DIR", &self.run)
            .env("LOGGING_CONF", logging_conf(&self.run))
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        for pid in daemons_in(&stdout(&out)) {
            self.sb.track(pid);
        }
        out
    }

    /// The shell running the example `command` in `etc`, with the tool on
    /// its PATH; what it printed on stdout and stderr, in order.
    fn shell(&self, command: &str) -> (Option<i32>, String) {
        let out = self.shell_command(command).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for pid in daemons_in(&text) {
            self.sb.track(pid);
        }
        (out.status.code(), text)
    }

    fn shell_command(&self, command: &str) -> Command {
        let bin_dir = Path::new(bin()).parent().unwrap();
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            // Where the examples write /etc/systemd/system, this machine's.
            .arg(format!(
                "exec 2>&1; {}",
                self.here(command).replace(
                    "/etc/systemd/system",
                    &self.sb.path("systemd").display().to_string()
                )
            ))
            .current_dir(&self.etc)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("DAEMONIZATION_PID_DIR", &self.run)
            .env("LOGGING_CONF", logging_conf(&self.run))
            .env("HOME", self.sb.dir.path())
            .env_remove("NOTIFY_SOCKET");
        shell
    }

    /// Runs the example and checks it prints what the manual shows, in
    /// shape; returns its exit code.
    fn example(&self, command: &str) -> Option<i32> {
        self.example_but(command, |_| false)
    }

    /// `example`, without the lines printed that `aside` takes.
    fn example_but(&self, command: &str, aside: impl Fn(&str) -> bool) -> Option<i32> {
        let (code, printed) = self.shell(command);
        let printed: String = printed
            .lines()
            .filter(|l| !aside(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let shown = self.here(&shown(command));
        assert_eq!(
            shape(&printed),
            shape(&shown),
            "`$ {command}` printed:\n{printed}\nthe manual shows:\n{shown}"
        );
        code
    }
}

impl Machine {
    /// The example `command` at a terminal, in this machine's shell.
    fn terminal(&self, command: &str) -> Terminal {
        let inner = self.here(command).replace('\'', "'\\''");
        let script = self
            // The command is the terminal's foreground process, as an
            // interactive shell runs it: with a shell between that waits
            // for it (dash does), a Ctrl-C would end that shell.
            .shell_command(&format!("exec script -qec 'exec {inner}' /dev/null"))
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("script(1) runs (apt-get install bsdutils)");
        self.sb.track(script.id() as i32);
        Terminal::of(script)
    }
}

/// The commands the scenarios of this file run: the string literals they
/// pass to `example`, `example_but` and `shown` (read from this file).
fn run_here() -> Vec<String> {
    let source = include_str!("docs.rs");
    let mut found = Vec::new();
    // (Spelled in two parts, so that this line is not one of them.)
    for call in [
        concat!("m.example", "("),
        concat!("m.example_but", "("),
        concat!("shown", "("),
    ] {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let mut literal = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => literal.extend(chars.next()),
                    '"' => break,
                    c => literal.push(c),
                }
            }
            found.push(literal);
        }
    }
    found
}

/// Each example of the manual is run by a scenario here (a call that
/// runs it, in a test of this file), and each example a scenario runs is
/// in the manual.
#[test]
fn every_example_is_run() {
    let examples: Vec<String> = examples().into_iter().map(|e| e.command).collect();
    let run = run_here();
    for example in &examples {
        assert!(
            run.contains(example),
            "the manual's example `$ {example}` is run by no scenario of tests/docs.rs"
        );
    }
    for command in &run {
        assert!(
            examples.contains(command),
            "tests/docs.rs runs `$ {command}`, which the manual does not show"
        );
    }
}

/// A directory's status, `status -v` of a supervised daemon, and `list`
/// once that daemon died (its pid file left).
#[test]
fn status_of_a_directory_status_v_and_list() {
    let m = Machine::new();
    m.conf(
        "api.conf",
        "(:name \"api\" :pid-file \"api.pid\" :main-function #.(lambda () t))",
    );
    m.conf(
        "web.conf",
        "(:name \"web\" :pid-file \"web.pid\" :restart :on-failure :output \"/var/log/web.log\"\n \
         :main-function #.(lambda () (format t \"serving~%\") t))",
    );
    assert_eq!(m.tool("api.conf", &["start"]).status.code(), Some(0));
    // (Exit 3: not every daemon there runs.)
    assert_eq!(
        m.example("daemonization /etc/daemonization status"),
        Some(3)
    );
    let out = m.tool("web.conf", &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let supervisor = started_pid(&out);
    assert_eq!(m.example("daemonization web.conf status -v"), Some(0));
    // The daemon dies whole, its pid file left.
    let lisp = stdout(&m.tool("web.conf", &["status", "--print", "plist"]))
        .split(":lisp-pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse::<i32>().ok())
        .unwrap();
    for pid in [supervisor, lisp] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    assert!(wait_until(30, || !alive(supervisor) && !alive(lisp)));
    assert_eq!(m.example("daemonization list"), Some(0));
    assert_eq!(m.tool("api.conf", &["stop"]).status.code(), Some(0));
    assert_eq!(m.tool("web.conf", &["zap"]).status.code(), Some(0));
}

/// The usage errors.
#[test]
fn usage_errors() {
    let m = Machine::new();
    m.conf("site.conf", "(:pid-file \"site.pid\")");
    assert_eq!(m.example("daemonization site.conf stauts"), Some(2));
    assert_eq!(m.example("daemonization start site.conf"), Some(2));
}

/// A restart on held sockets whose new Lisp fails: the old one serves on.
#[test]
fn a_failed_restart() {
    let m = Machine::new();
    let port = free_port();
    let broken = m.sb.path("broken");
    m.conf(
        "site.conf",
        &format!(
            "(:name \"site\" :pid-file \"site.pid\"\n \
             :listen ((:name \"http\" :port {port} :address \"127.0.0.1\"))\n \
             :main-function #.(lambda () (when (probe-file {}) (error \"no database at ~a\" \"db:5432\")) t))",
            lisp_string(broken.to_str().unwrap())
        ),
    );
    assert_eq!(m.tool("site.conf", &["start"]).status.code(), Some(0));
    std::fs::write(&broken, "").unwrap();
    assert_eq!(m.example("daemonization site.conf restart"), Some(1));
    assert_eq!(m.tool("site.conf", &["stop"]).status.code(), Some(0));
}

/// A supervisor that gave up at `:start-limit`: its record, in `status`.
#[test]
fn a_start_limit_in_status() {
    let m = Machine::new();
    let go = m.sb.path("go");
    m.conf(
        "site.conf",
        &format!(
            "(:name \"site\" :pid-file \"site.pid\" :dynamic-space-size 64\n \
             :restart :on-failure :restart-delay 0.1 :start-limit (1 60)\n \
             :main-function #.(lambda ()\n \
               (sb-thread:make-thread (lambda ()\n \
                 (loop until (probe-file {}) do (sleep 0.02))\n \
                 (make-array (* 200 1024 1024) :element-type '(unsigned-byte 8))))\n \
               t))",
            lisp_string(go.to_str().unwrap())
        ),
    );
    let out = m.tool("site.conf", &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let supervisor = started_pid(&out);
    std::fs::write(&go, "").unwrap();
    assert!(wait_until(60, || !alive(supervisor)), "gave up");
    assert_eq!(m.example("daemonization site.conf status"), Some(1));
    assert_eq!(m.tool("site.conf", &["zap"]).status.code(), Some(0));
}

/// `unit`, its output saved as the manual says.
#[test]
fn a_unit_saved() {
    let m = Machine::new();
    m.conf(
        "web.conf",
        "(:name \"web\" :pid-file \"web.pid\" :main-function #.(lambda () t))",
    );
    // (Not the manual's: the tool under test may run from a temporary
    // directory, which a unit should not name.)
    let temporary = |l: &str| l.starts_with("WARNING: ExecStart runs the tool at ");
    assert_eq!(
        m.example_but(
            "daemonization /etc/daemonization/web.conf unit > /etc/systemd/system/web.service",
            temporary
        ),
        Some(0)
    );
    let unit = std::fs::read_to_string(m.sb.path("systemd/web.service")).unwrap();
    assert!(unit.contains("Type=notify"), "{unit}");
}

/// `eval` of forms and of standard input, then the `repl` transcript at a
/// terminal: a package, a form interrupted by Ctrl-C, Ctrl-D.
#[test]
fn eval_and_the_repl() {
    let m = Machine::new();
    m.conf(
        "site.conf",
        "(:name \"site\" :pid-file \"site.pid\" :main-function #.(lambda () (defpackage :site (:use :cl)) t))",
    );
    let out = m.tool("site.conf", &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        m.example("daemonization site.conf eval '(lisp-implementation-version)' '(princ \"hi\")'"),
        Some(0)
    );
    assert_eq!(
        m.example("echo '(defvar *n* 41) (1+ *n*)' | daemonization site.conf eval -"),
        Some(0)
    );
    // The transcript: what follows each prompt is typed (^C and ^D as
    // keys), the other lines are what the REPL answers.
    let transcript = shown("daemonization site.conf repl");
    let mut terminal = m.terminal("daemonization site.conf repl");
    let evals = || {
        stdout(&m.tool(
            "site.conf",
            &["eval", "(count \"daemonization eval\" (sb-thread:list-all-threads) :key #'sb-thread:thread-name :test #'equal)"],
        ))
        .trim()
        .parse::<u32>()
        .unwrap_or(0)
    };
    for line in transcript.lines() {
        if let Some((prompt, typed)) = line.split_once("> ") {
            terminal.seen(&format!("{prompt}> "));
            match typed {
                "^D" => terminal.type_in("\x04"),
                typed => {
                    terminal.type_in(&format!("{typed}\r"));
                    if typed.starts_with("(loop") {
                        // Ctrl-C once the form runs (its thread and this eval's).
                        assert!(wait_until(30, || evals() >= 2), "the loop runs");
                    }
                }
            }
        } else if let Some(answer) = line.strip_prefix("^C") {
            terminal.type_in("\x03");
            terminal.seen(answer);
        } else {
            terminal.seen(line);
        }
    }
    assert_eq!(terminal.end(), Some(0), "Ctrl-D detached");
    assert_eq!(m.tool("site.conf", &["stop"]).status.code(), Some(0));
}

/// The README's quick start: once `scripts/quickstart.sh` started
/// hello.conf (here: as the test user), the three commands it shows.
#[test]
fn the_readme_quick_start_commands() {
    needs_root();
    let user = test_user();
    let m = Machine::on(open_sandbox());
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("hello.conf eval"))
        .expect("the README's quick start commands");
    let commands: Vec<String> = block
        .lines()
        .map(|l| l.replacen("target/release/daemonization", "daemonization", 1))
        .collect();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf-examples/hello.conf"),
    )
    .unwrap();
    assert!(example.contains(":user \"daemonization-demo\""));
    m.conf(
        "hello.conf",
        &example.replace(
            ":user \"daemonization-demo\"",
            &format!(":user \"{}\"", user.name),
        ),
    );
    let out = m.tool("hello.conf", &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let [eval, repl, stop] = &commands[..] else {
        panic!("the quick start shows three commands: {commands:?}")
    };
    assert!(eval.ends_with("eval '(hello-ticks)'"), "{eval}");
    let (code, printed) = m.shell(eval);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.trim().parse::<u64>().is_ok(), "{printed}");
    assert!(repl.ends_with(" repl"), "{repl}");
    let mut terminal = m.terminal(repl);
    terminal.seen("hello COMMON-LISP-USER> ");
    terminal.type_in("(+ 1000 (hello-ticks))\r");
    terminal.seen("\n1");
    terminal.seen("hello COMMON-LISP-USER> ");
    terminal.type_in("\x04");
    assert_eq!(terminal.end(), Some(0));
    assert!(stop.ends_with(" stop"), "{stop}");
    let (code, printed) = m.shell(stop);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.starts_with("success stopped (pid = "), "{printed}");
}
