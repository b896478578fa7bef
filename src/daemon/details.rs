//! `status -v`: what `/proc` and the conf tell of a running daemon, as
//! `report::Details`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Request;
use super::fact::{Details, Fact, Image};

/// The details of the daemon `status` found (`fact`): of its Lisp, when
/// supervised.
pub fn details(req: &Request, fact: &Fact) -> Details {
    let spec = &req.conf.spec;
    let running = match fact {
        Fact::Runs {
            pid, supervision, ..
        } => Some((*pid, supervision.as_ref())),
        _ => None,
    };
    let lisp_pid = running.and_then(|(pid, supervision)| match supervision {
        Some(s) => s.lisp_pid,
        None => Some(pid),
    });
    let since = lisp_pid
        .and_then(super::process::start_time)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let uptime = since.and_then(|since| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|now| Duration::from_secs(now.as_secs().saturating_sub(since)))
    });
    let cgroup = super::contain::Cgroup::of_daemon(&req.conf.pid_file)
        .filter(|c| running.is_some() && c.exists());
    let read = super::tail::reader(req);
    let last_lines = spec
        .output
        .as_deref()
        .and_then(|o| super::tail::last_lines_of(o, 5, &read).ok())
        .unwrap_or_default()
        .iter()
        .map(|l| crate::visible::line(l))
        .collect();
    Details {
        name: spec.name.clone(),
        lisp: lisp_version(req),
        conf: req.conf.path.clone(),
        since,
        uptime,
        rss_kib: lisp_pid.and_then(super::process::resident_kib),
        output: spec.output.clone(),
        last_lines,
        core: spec.core.as_ref().map(|_| super::core::describe(req)),
        processes: running.map(|(pid, _)| match &cgroup {
            Some(c) => c.members().len() as u64,
            None => super::contain::tree_of(pid).len() as u64,
        }),
        cgroup: cgroup.map(|c| c.path),
        image: running.and_then(|_| image(req)),
        control_socket: req
            .conf
            .spec
            .control_dir
            .as_ref()
            .filter(|_| running.is_some() && req.runner.kind.facts().adopts_descriptors)
            .map(|d| d.join("socket")),
    }
}

/// How long `status -v` waits for the image's word.
const IMAGE_WAIT: Duration = Duration::from_secs(1);

/// The image's facts on its control socket, within `IMAGE_WAIT`; `None`
/// when it has no control socket.
fn image(req: &Request) -> Option<Image> {
    use super::control::ControlError;
    use crate::wire::control::{Reply, Request as Ask};
    let deadline = std::time::Instant::now() + IMAGE_WAIT;
    let mut control = match super::control::connect(req, deadline) {
        Ok(control) => control,
        Err(ControlError::Unsupported { .. } | ControlError::Off | ControlError::NotRunning) => {
            return None;
        }
        Err(ControlError::NotAnswering { why, .. }) => return Some(Image::NotAnswering(why)),
        Err(e) => return Some(Image::NotAnswering(e.to_string())),
    };
    if let Err(e) = control.send(&Ask::Status) {
        return Some(Image::NotAnswering(e.to_string()));
    }
    let mut facts = super::ImageFacts::default();
    loop {
        match control.next(Some(deadline)) {
            Ok(Reply::Fact { key, value }) => {
                let number = value.parse::<u64>().ok();
                match key.as_str() {
                    "heap-used" => facts.heap_used = number,
                    "heap-limit" => facts.heap_limit = number,
                    "gc-count" => facts.gc_count = number,
                    "gc-seconds" => facts.gc_seconds = Some(value),
                    "uptime-seconds" => facts.uptime_seconds = number,
                    "thread" if facts.threads.len() < 1000 => facts.threads.push(value),
                    "system" if facts.systems.len() < 1000 => facts.systems.push(value),
                    _ => {}
                }
            }
            Ok(Reply::Done { .. }) => return Some(Image::Answered(facts)),
            Ok(_) => {}
            Err(ControlError::NotAnswering { why, .. }) => return Some(Image::NotAnswering(why)),
            Err(e) => return Some(Image::NotAnswering(e.to_string())),
        }
    }
}

/// The Lisp and its version: the first line of `PROGRAM --version`, run
/// only when the program passes the trust rule `start` applies to it.
fn lisp_version(req: &Request) -> Option<String> {
    let name = req.runner.kind.facts().name;
    let program = super::find_program(&req.runner.program)?;
    if crate::trust::check_program(&program, &req.trust).is_err() {
        return Some(name.to_string());
    }
    let out = std::process::Command::new(Path::new(&program))
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .env_remove("SBCL_HOME")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().map(str::trim).filter(|l| !l.is_empty());
    Some(first.map_or(name.to_string(), str::to_string))
}
