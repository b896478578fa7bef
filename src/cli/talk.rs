//! `eval` and `repl`: talking to the running daemon's image over its
//! control socket (`daemon::control`). What the daemon sends is shown with
//! its control characters escaped (`crate::visible`): its code may be
//! anyone's.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::command::Command;
use crate::daemon::control::{self, Control, ControlError, Heard};
use crate::report::exit;
use crate::visible;
use crate::wire::control::{Reply, Request};

use super::invocation::Options;
use super::session::{Session, Switching};

/// How long a connection and its greeting may take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The exit code for a daemon that cannot be reached.
fn unreachable_code(e: &ControlError) -> u8 {
    match e {
        ControlError::NotRunning => exit::PROGRAM_NOT_RUNNING,
        _ => exit::PRIVILEGE,
    }
}

fn connect(session: &Session, options: &Options, command: Command) -> Result<Control, ExitCode> {
    let req = session.request(Switching::of(command), options)?;
    let fail = |e: ControlError| {
        eprintln!("ERROR: {e}");
        ExitCode::from(unreachable_code(&e))
    };
    let mut control = control::connect(&req, Instant::now() + CONNECT_WAIT).map_err(fail)?;
    if let Some(package) = &options.package {
        let errors =
            answer(&mut control, &Request::Package(package), None, &mut |_| {}).map_err(fail)?;
        if let Some(error) = errors {
            eprintln!("ERROR: {}", visible::line(&error));
            return Err(ExitCode::from(exit::USAGE));
        }
    }
    Ok(control)
}

/// Sends `request` and shows its answer (`out` and `value` through
/// `show`) until `done`: the error the daemon reported, if any.
fn answer(
    control: &mut Control,
    request: &Request,
    deadline: Option<Instant>,
    show: &mut dyn FnMut(&Reply),
) -> Result<Option<String>, ControlError> {
    control.send(request)?;
    let mut error = None;
    loop {
        match control.next(deadline)? {
            Reply::Done { .. } => return Ok(error),
            Reply::Error(text) => error = Some(text),
            reply @ (Reply::Out(_) | Reply::Value(_)) => show(&reply),
            other => return Err(crate::wire::control::Broken(format!("{other:?}")).into()),
        }
    }
}

/// Prints `out` and `value` replies: a value on a line of its own, after
/// output that did not end one.
#[derive(Default)]
struct Printer {
    mid_line: bool,
}

impl Printer {
    fn print(&mut self, reply: &Reply) {
        let mut stdout = std::io::stdout().lock();
        let _ = match reply {
            Reply::Out(text) => {
                self.mid_line = !text.ends_with('\n');
                write!(stdout, "{}", visible::output(text))
            }
            Reply::Value(text) => {
                let fresh = if std::mem::take(&mut self.mid_line) {
                    "\n"
                } else {
                    ""
                };
                writeln!(stdout, "{fresh}{}", visible::output(text))
            }
            _ => Ok(()),
        };
        let _ = stdout.flush();
    }

    /// Ends a line left open by output.
    fn finish(&mut self) {
        if std::mem::take(&mut self.mid_line) {
            println!();
        }
    }
}

/// `eval FORM...`: the forms' output and values on stdout; a form that
/// signals ends it, its condition on stderr (exit 1). `--timeout` bounds
/// the evaluation (the form is interrupted then).
pub fn eval(session: &Session, options: &Options) -> ExitCode {
    let text = match options.forms.as_slice() {
        [dash] if dash == "-" => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("ERROR: cannot read the forms from stdin: {e}");
                return ExitCode::from(exit::USAGE);
            }
            text
        }
        forms => forms.join(" "),
    };
    let mut control = match connect(session, options, Command::Eval) {
        Ok(control) => control,
        Err(code) => return code,
    };
    let deadline = options.start_timeout.map(|t| Instant::now() + t);
    let mut printer = Printer::default();
    let answered = answer(&mut control, &Request::Eval(&text), deadline, &mut |r| {
        printer.print(r)
    });
    printer.finish();
    match answered {
        Ok(None) => ExitCode::from(exit::OK),
        Ok(Some(error)) => {
            eprintln!("ERROR: {}", visible::block(&error));
            ExitCode::from(exit::FAILED)
        }
        Err(ControlError::NotAnswering { why, .. })
            if deadline.is_some() && why.contains("in time") =>
        {
            let _ = control.send(&Request::Interrupt);
            eprintln!(
                "ERROR: the forms did not finish within {} s (--timeout); they were interrupted",
                options.start_timeout.unwrap_or_default().as_secs_f64()
            );
            ExitCode::from(exit::FAILED)
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::from(unreachable_code(&e))
        }
    }
}

/// Whether `text` holds whole forms: every parenthesis closed, no string,
/// `|symbol|` or `#|comment|#` left open.
pub fn balanced(text: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' | '|' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        d if d == c => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return false;
                }
            }
            ';' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '#' => match chars.peek() {
                Some('\\') => {
                    chars.next();
                    chars.next();
                }
                Some('|') => {
                    chars.next();
                    let mut nesting = 1;
                    let mut last = ' ';
                    for d in chars.by_ref() {
                        match (last, d) {
                            ('|', '#') => nesting -= 1,
                            ('#', '|') => nesting += 1,
                            _ => {}
                        }
                        if nesting == 0 {
                            break;
                        }
                        last = d;
                    }
                    if nesting > 0 {
                        return false;
                    }
                }
                _ => {}
            },
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

/// Where the REPL keeps its history: `~/.local/share/daemonization/history`
/// in the caller's home (root's from the password database, never a
/// `$HOME` another user may have left), only when every directory from the
/// home down and the file are the caller's and no link: the history is
/// written by name, and root never writes through another user's path.
fn history_file() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let home = crate::daemon::caller_home()?;
    // Root with another home in $HOME (sudo -E): no history at all.
    if std::env::var_os("HOME").is_some_and(|h| std::path::Path::new(&h) != home) {
        return None;
    }
    let me = nix::unistd::geteuid().as_raw();
    let dir = home.join(".local/share/daemonization");
    std::fs::create_dir_all(&dir).ok()?;
    let ours = |path: &std::path::Path| {
        std::fs::symlink_metadata(path)
            .is_ok_and(|m| !m.file_type().is_symlink() && m.uid() == me && m.mode() & 0o022 == 0)
    };
    let chain = [
        home.clone(),
        home.join(".local"),
        home.join(".local/share"),
        dir.clone(),
    ];
    if !chain.iter().all(|d| ours(d)) {
        return None;
    }
    let file = dir.join("history");
    match std::fs::symlink_metadata(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(file),
        Ok(m) if m.file_type().is_file() && m.uid() == me && m.nlink() == 1 => Some(file),
        _ => None,
    }
}

/// `repl`: a REPL at a terminal in the daemon's image. Ctrl-C at the
/// prompt clears the line and, while a form runs, interrupts it; Ctrl-D
/// detaches (the daemon serves on).
pub fn repl(session: &Session, options: &Options) -> ExitCode {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "ERROR: repl needs a terminal; from a script, use eval (daemonization CONF eval FORM..., or - to read them from stdin)"
        );
        return ExitCode::from(exit::USAGE);
    }
    let mut control = match connect(session, options, Command::Repl) {
        Ok(control) => control,
        Err(code) => return code,
    };
    // SIGINT, while a form runs (the terminal in its normal mode), is read
    // here and becomes an interrupt of the form, not the end of the tool.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    let interrupts = mask.thread_block().ok().and_then(|()| {
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()
    });
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("ERROR: cannot use the terminal: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let history = history_file();
    if let Some(file) = &history {
        let _ = editor.load_history(file);
    }
    let name = session.conf.spec.name.clone().unwrap_or_else(|| {
        session
            .conf
            .pid_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut pending = String::new();
    let code = loop {
        let prompt = match pending.is_empty() {
            true => format!(
                "{} {}> ",
                visible::line(&name),
                visible::line(&control.package)
            ),
            false => "... ".to_string(),
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if !pending.is_empty() {
                    pending.push('\n');
                }
                pending.push_str(&line);
                if pending.trim().is_empty() {
                    pending.clear();
                    continue;
                }
                if !balanced(&pending) {
                    continue;
                }
                let text = std::mem::take(&mut pending);
                let _ = editor.add_history_entry(text.as_str());
                if let Err(e) = evaluate(&mut control, &text, interrupts.as_ref()) {
                    eprintln!("ERROR: {e}");
                    break unreachable_code(&e);
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => pending.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break exit::OK,
            Err(e) => {
                eprintln!("ERROR: cannot read from the terminal: {e}");
                break exit::FAILED;
            }
        }
    };
    if let Some(file) = &history {
        let _ = editor.save_history(file);
    }
    ExitCode::from(code)
}

/// One REPL entry: sent, its answer shown; a Ctrl-C meanwhile interrupts it.
fn evaluate(
    control: &mut Control,
    text: &str,
    interrupts: Option<&SignalFd>,
) -> Result<(), ControlError> {
    control.send(&Request::Eval(text))?;
    let mut printer = Printer::default();
    loop {
        let heard = control.wait(None, interrupts.map(|s| s.as_fd()));
        if !matches!(heard, Ok(Heard::Reply(Reply::Out(_) | Reply::Value(_)))) {
            printer.finish();
        }
        match heard? {
            Heard::Extra => {
                if let Some(signals) = interrupts {
                    while let Ok(Some(_)) = signals.read_signal() {}
                }
                control.send(&Request::Interrupt)?;
            }
            Heard::Reply(Reply::Done { .. }) => return Ok(()),
            Heard::Reply(Reply::Error(error)) => {
                eprintln!("ERROR: {}", visible::block(&error))
            }
            Heard::Reply(reply @ (Reply::Out(_) | Reply::Value(_))) => printer.print(&reply),
            Heard::Reply(other) => {
                return Err(crate::wire::control::Broken(format!("{other:?}")).into());
            }
        }
    }
}

/// `swank`: the daemon's control connection handed to swank, relayed to a
/// Unix socket of the caller's own: how Emacs (contrib/emacs/daemonization.el)
/// reaches SLIME's server with every check of `eval` made (the socket the
/// daemon's Lisp serves, opened without following a link), and no port
/// opened. The relay's socket is in a fresh 0700 directory of the caller's;
/// its path is the one line printed; it takes one connection, of the
/// caller's uid (the kernel's word), within a minute.
pub fn swank(session: &Session, options: &Options) -> ExitCode {
    let mut control = match connect(session, options, Command::Swank) {
        Ok(control) => control,
        Err(code) => return code,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    match answer(&mut control, &Request::Swank, Some(deadline), &mut |_| {}) {
        Ok(None) => {}
        Ok(Some(error)) => {
            eprintln!("ERROR: {}", visible::line(&error));
            return ExitCode::from(exit::FAILED);
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(unreachable_code(&e));
        }
    }
    let (daemon, rest) = control.into_parts();
    match relay_for_caller(daemon, &rest) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("ERROR: the swank relay: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Makes the caller's socket, prints its path, takes one connection of
/// the caller's, and relays it to `daemon` (after `rest`, read already).
fn relay_for_caller(daemon: std::os::unix::net::UnixStream, rest: &[u8]) -> std::io::Result<()> {
    use std::os::unix::net::UnixListener;
    // mkdtemp in /tmp for root (never a $TMPDIR another user may have
    // set): a fresh name, 0700, the caller's; /tmp's sticky bit keeps it.
    let base = match nix::unistd::geteuid().is_root() {
        true => std::path::PathBuf::from("/tmp"),
        false => std::env::temp_dir(),
    };
    let dir = tempfile::Builder::new()
        .prefix("daemonization-swank-")
        .tempdir_in(base)?;
    let path = dir.path().join("swank");
    let listener = UnixListener::bind(&path)?;
    println!("{}", path.display());
    std::io::stdout().flush()?;
    listener.set_nonblocking(true)?;
    let me = nix::unistd::geteuid().as_raw();
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        let fds = [(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
        if crate::daemon::ready_within(&fds, Some(deadline))?.is_none() {
            return Err(std::io::Error::other("nobody connected within 60 s"));
        }
        let Ok((client, _)) = listener.accept() else {
            continue;
        };
        let peer =
            nix::sys::socket::getsockopt(&client, nix::sys::socket::sockopt::PeerCredentials)?;
        if peer.uid() == me {
            break client;
        }
        eprintln!(
            "WARNING: refused a connection of uid {} to the swank relay",
            peer.uid()
        );
    };
    drop(listener);
    drop(dir);
    client.set_nonblocking(false)?;
    relay(client, daemon, rest)
}

/// Copies between the caller's connection `client` and the daemon's
/// (`rest`, read already, first to the client) until either ends. It
/// never waits on one side alone: a daemon that stops reading holds at
/// most `RELAY_HELD` bytes of the client's and cannot keep the relay once
/// the client has left.
fn relay(
    mut client: std::os::unix::net::UnixStream,
    mut daemon: std::os::unix::net::UnixStream,
    rest: &[u8],
) -> std::io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    client.set_nonblocking(true)?;
    daemon.set_nonblocking(true)?;
    let (mut to_client, mut to_daemon) = (rest.to_vec(), Vec::new());
    let mut buf = vec![0u8; 65536];
    loop {
        let wants = |held: &Vec<u8>, out: &Vec<u8>| {
            let mut events = PollFlags::empty();
            events.set(PollFlags::POLLIN, held.len() < RELAY_HELD);
            events.set(PollFlags::POLLOUT, !out.is_empty());
            events
        };
        let (of_client, of_daemon) = {
            let mut fds = [
                PollFd::new(client.as_fd(), wants(&to_daemon, &to_client)),
                PollFd::new(daemon.as_fd(), wants(&to_client, &to_daemon)),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let revents = |fd: &PollFd| fd.revents().unwrap_or(PollFlags::empty());
            (revents(&fds[0]), revents(&fds[1]))
        };
        let ended = PollFlags::POLLHUP | PollFlags::POLLERR;
        // The client left (its socket closed: POLLHUP, polled or not):
        // what the daemon did not take goes with it.
        if of_client.contains(PollFlags::POLLIN) {
            if !take(&mut client, &mut to_daemon, &mut buf)? {
                return Ok(());
            }
        } else if of_client.intersects(ended) {
            return Ok(());
        }
        // The daemon ended: what it said reaches the client, within a bound.
        let daemon_ended = match of_daemon.contains(PollFlags::POLLIN) {
            true => !take(&mut daemon, &mut to_client, &mut buf)?,
            false => of_daemon.intersects(ended),
        };
        if daemon_ended {
            client.set_nonblocking(false)?;
            client.set_write_timeout(Some(Duration::from_secs(30)))?;
            return client.write_all(&to_client);
        }
        give(&mut client, &mut to_client)?;
        give(&mut daemon, &mut to_daemon)?;
    }
}

/// The most bytes of one side the relay holds for the other.
const RELAY_HELD: usize = 1 << 20;

/// What `from` has now, added to `held`; false at `from`'s end.
fn take(
    from: &mut std::os::unix::net::UnixStream,
    held: &mut Vec<u8>,
    buf: &mut [u8],
) -> std::io::Result<bool> {
    match from.read(buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            held.extend_from_slice(&buf[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
        Err(e) => Err(e),
    }
}

/// As much of `held` as `to` takes now, written and removed.
fn give(to: &mut std::os::unix::net::UnixStream, held: &mut Vec<u8>) -> std::io::Result<()> {
    while !held.is_empty() {
        match to.write(held) {
            Ok(n) => drop(held.drain(..n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::balanced;

    #[test]
    fn forms_are_read_until_balanced() {
        for whole in [
            "(+ 1 2)",
            "42",
            "(format t \"(\")",
            "(list #\\( 1)",
            "'|a(b|",
            "(a) ; (",
            "#| ( |# (b)",
            "",
        ] {
            assert!(balanced(whole), "{whole:?}");
        }
        for open in ["(+ 1", "(format t \"a", "(a\n(b)", "#| (a) ", "'|a"] {
            assert!(!balanced(open), "{open:?}");
        }
    }
}
