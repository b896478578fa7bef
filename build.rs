//! Generates the bash, zsh and fish completions from the
//! clap definitions and the command tables in `src/args.rs` (bash's by the
//! tool's grammar, zsh's and fish's by clap_complete), into `target/<profile>/assets/`
//! (where the Debian package takes them from; see `[package.metadata.deb]`).

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

#[path = "src/args.rs"]
#[allow(dead_code)]
mod args;

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/args.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is target/<profile>/build/daemonization-HASH/out.
    let assets = out
        .ancestors()
        .nth(3)
        .map_or_else(|| out.join("assets"), |profile| profile.join("assets"));
    std::fs::create_dir_all(&assets)?;
    // The man pages are the tool's own (`help man`, `help man-conf`, from
    // its tables), kept in doc/ (a test keeps them equal).
    let mut command = args::Args::command();
    write_if_changed(
        &assets.join("daemonization.bash"),
        args::bash_completion().as_bytes(),
    )?;
    for shell in [Shell::Zsh, Shell::Fish] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "daemonization", &mut script);
        let name = match shell {
            Shell::Zsh => "_daemonization",
            _ => "daemonization.fish",
        };
        write_if_changed(&assets.join(name), &script)?;
    }
    Ok(())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes)?;
    }
    Ok(())
}
