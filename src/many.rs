//! Many daemons: a directory as the conf argument runs the command for
//! every `*.conf` in it, in parallel (each in its own process of this
//! tool, so one conf's trouble stays its own), and prints each one's
//! output prefixed with its name, in name order.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode, Stdio};

use crate::command::Command;
use crate::report::exit;

/// Whether `command` can be run over a directory of confs.
pub fn takes_directory(command: Command) -> bool {
    use Command::*;
    matches!(
        command,
        Start | Stop | Zap | Kill | Restart | TryRestart | Status | Check
    )
}

/// The `*.conf` files of `dir`, in name order.
fn confs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut confs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    confs.sort();
    Ok(confs)
}

/// Runs `command` (with the option arguments `options`) for every conf of
/// `dir`; the exit code is 0 when each succeeded, else the highest.
pub fn run(dir: &Path, command: Command, options: &[OsString]) -> anyhow::Result<ExitCode> {
    let confs = confs(dir)?;
    if confs.is_empty() {
        eprintln!("ERROR: {} holds no *.conf file", dir.display());
        return Ok(ExitCode::from(exit::CONF_ERROR));
    }
    let tool = std::env::current_exe()?;
    let children: Vec<_> = confs
        .iter()
        .map(|conf| {
            Process::new(&tool)
                .args(options)
                .arg(conf)
                .arg(command.name())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    let mut worst = 0u8;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for (conf, child) in confs.iter().zip(children) {
        let name = conf
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let output = match child.and_then(|c| c.wait_with_output()) {
            Ok(output) => output,
            Err(e) => {
                let _ = writeln!(err, "{name}: ERROR: cannot run the tool: {e}");
                worst = worst.max(exit::FAILED);
                continue;
            }
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let _ = writeln!(out, "{name}: {line}");
        }
        let _ = out.flush();
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            let _ = writeln!(err, "{name}: {line}");
        }
        let code = output
            .status
            .code()
            .map_or(exit::FAILED, |c| c.clamp(0, 255) as u8);
        worst = worst.max(code);
    }
    Ok(ExitCode::from(worst))
}
