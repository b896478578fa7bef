//! Many daemons: a directory as the conf argument runs the command for
//! every `*.conf` in it, in parallel (each in its own process of this
//! tool, so one conf's trouble stays its own), and prints each one's
//! output prefixed with its name, in name order.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode, Output, Stdio};

use crate::command::Command;
use crate::report::exit;

/// How many confs run at once.
const AT_ONCE: usize = 16;

/// The `*.conf` files of `dir` (regular files, or links to them), in name
/// order. As root the directory must be one only root can change (as a
/// conf's): another user's would choose which confs root runs.
fn confs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let trust = crate::trust::Trust::of_caller();
    if trust.root {
        crate::trust::walk_dir(
            dir,
            crate::trust::Policy::Strict,
            &trust,
            "the directory of confs",
            None,
        )?;
    }
    let mut confs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
        .collect();
    confs.sort();
    Ok(confs)
}

/// A conf's name as a line prefix: its stem, control characters escaped.
fn prefix(conf: &Path) -> String {
    crate::visible::line(
        &conf
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
    )
}

/// Runs `command` (with the option arguments `options`) for every conf of
/// `dir`; the exit code is 0 when each succeeded, else the highest.
pub fn run(dir: &Path, command: Command, options: &[OsString]) -> anyhow::Result<ExitCode> {
    let confs = confs(dir)?;
    if confs.is_empty() {
        eprintln!("ERROR: {} holds no *.conf file", dir.display());
        return Ok(ExitCode::from(exit::CONF_ERROR));
    }
    let mut worst = 0u8;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    each_run(&confs, options, command.name(), |conf, output| {
        worst = worst.max(report(conf, output, &mut out, &mut err));
    })?;
    Ok(ExitCode::from(worst))
}

/// Runs this tool as `TOOL OPTIONS CONF COMMAND` for every conf,
/// `AT_ONCE` at a time, and gives `each` every conf's output (or why the
/// tool could not run), in the order of `confs`.
fn each_run(
    confs: &[PathBuf],
    options: &[OsString],
    command: &str,
    mut each: impl FnMut(&Path, std::io::Result<Output>),
) -> std::io::Result<()> {
    let tool = std::env::current_exe()?;
    for batch in confs.chunks(AT_ONCE) {
        let children: Vec<_> = batch
            .iter()
            .map(|conf| {
                Process::new(&tool)
                    .args(options)
                    .arg(conf)
                    .arg(command)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect();
        for (conf, child) in batch.iter().zip(children) {
            each(conf, child.and_then(|c| c.wait_with_output()));
        }
    }
    Ok(())
}

/// Prints one conf's lines, prefixed; its exit code (255 when the tool
/// could not run for it: above every code of a command).
fn report(
    conf: &Path,
    output: std::io::Result<Output>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> u8 {
    let name = prefix(conf);
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            let _ = writeln!(err, "{name}: ERROR: cannot run the tool: {e}");
            return u8::MAX;
        }
    };
    // The tool's own lines, shown as every text from elsewhere is.
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let _ = writeln!(out, "{name}: {}", crate::visible::line(line));
    }
    let _ = out.flush();
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        let _ = writeln!(err, "{name}: {}", crate::visible::line(line));
    }
    output
        .status
        .code()
        .map_or(exit::FAILED, |c| c.clamp(0, 255) as u8)
}

/// One daemon of `list`: what its `status -v --print json` said.
struct Listed {
    /// The record's `:name`, for a conf that is gone.
    name: Option<String>,
    conf: PathBuf,
    status: Option<serde_json::Value>,
    error: Option<String>,
}

/// `list`: every daemon the tool started (by its records), with name, pid,
/// state, uptime, memory and conf, like `systemctl list-units`; with
/// `--print json`, their status objects.
pub fn list(records: Vec<crate::daemon::records::Record>, json: bool) -> anyhow::Result<ExitCode> {
    let options = ["--print", "json", "--verbose"].map(OsString::from);
    let confs: Vec<PathBuf> = records.iter().map(|r| r.conf.clone()).collect();
    let mut listed = Vec::with_capacity(confs.len());
    each_run(&confs, &options, "status", |conf, output| {
        listed.push(match output {
            Ok(output) => Listed {
                name: None,
                conf: conf.to_path_buf(),
                status: serde_json::from_slice(&output.stdout).ok(),
                error: String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .find(|l| l.starts_with("ERROR: "))
                    .map(|l| l["ERROR: ".len()..].to_string()),
            },
            Err(e) => Listed {
                name: None,
                conf: conf.to_path_buf(),
                status: None,
                error: Some(e.to_string()),
            },
        })
    })?;
    for (l, record) in listed.iter_mut().zip(&records) {
        l.name = record.name.clone();
    }
    if json {
        let all: Vec<serde_json::Value> = listed
            .iter()
            .map(|l| {
                l.status.clone().unwrap_or_else(
                    || serde_json::json!({"conf": l.conf.display().to_string(), "error": l.error}),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(ExitCode::from(exit::OK));
    }
    print!("{}", table(&listed));
    Ok(ExitCode::from(exit::OK))
}

/// The `list` table.
fn table(listed: &[Listed]) -> String {
    let mut rows = vec![["NAME", "PID", "STATE", "UPTIME", "MEMORY", "CONF"].map(String::from)];
    for l in listed {
        let s = l.status.as_ref();
        let text = |key: &str| s.and_then(|s| s[key].as_str()).map(str::to_string);
        let number = |key: &str| s.and_then(|s| s[key].as_u64());
        let name = text("name").or_else(|| l.name.clone()).unwrap_or_else(|| {
            l.conf
                .file_stem()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        });
        let state = match (text("status"), text("reason")) {
            (Some(status), Some(reason)) => format!("{status} ({reason})"),
            (Some(status), None) => status,
            (None, _) if !l.conf.exists() => "conf gone".to_string(),
            (None, _) => "unknown (a conf error)".to_string(),
        };
        let running = text("status").as_deref() == Some("running");
        let uptime = number("uptime")
            .filter(|_| running)
            .map(|u| humantime::format_duration(std::time::Duration::from_secs(u)).to_string());
        let memory = number("rss-kib")
            .filter(|_| running)
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0));
        // The pid `status` shows (a supervisor's, which `stop` signals).
        let pid = s.and_then(|s| s["pid"].as_i64()).filter(|_| running);
        let dash = || "-".to_string();
        rows.push([
            name,
            pid.map_or_else(dash, |p| p.to_string()),
            state,
            uptime.unwrap_or_else(dash),
            memory.unwrap_or_else(dash),
            l.conf.display().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                5 => c.clone(),
                _ => format!("{c:<width$}", width = widths[i]),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
