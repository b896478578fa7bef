//! Generates the bash, zsh and fish completions from the command tables
//! in `src/args.rs` (by the tool's grammar), into `target/<profile>/assets/`
//! (where the Debian package takes them from; see `[package.metadata.deb]`).

use std::path::{Path, PathBuf};

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
    for (name, script) in [
        ("daemonization.bash", args::bash_completion()),
        ("_daemonization", args::zsh_completion()),
        ("daemonization.fish", args::fish_completion()),
    ] {
        write_if_changed(&assets.join(name), script.as_bytes())?;
    }
    Ok(())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes)?;
    }
    Ok(())
}
