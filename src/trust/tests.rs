//! The trust rules on real files (as root, to make files of other owners;
//! CI runs as root).

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

use super::*;

/// A uid nobody uses: the attacker's files.
const OTHER: u32 = 4242;

fn root() -> Trust {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests make files of other owners: run them as root"
    );
    Trust::for_uid(0)
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn refusal(result: Result<impl std::fmt::Debug, PathError>) -> String {
    match result {
        Err(PathError::Refused(r)) => r.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_conf_is_read_from_the_descriptor_it_was_judged_on() {
    let trust = root();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.conf");
    fs::write(&conf, "(:name \"x\")").unwrap();
    assert_eq!(read_conf(&conf, &trust).unwrap(), "(:name \"x\")");

    mode(&conf, 0o664);
    let shown = conf.display();
    assert_eq!(
        refusal(read_conf(&conf, &trust)),
        format!(
            "refusing the conf file {shown}: writable by its group (mode 0664), and its code would run as root; chown root:root {shown}; chmod go-w {shown}"
        )
    );
    mode(&conf, 0o644);
    chown(&conf, OTHER);
    assert_eq!(
        refusal(read_conf(&conf, &trust)),
        format!(
            "refusing the conf file {shown}: owned by uid {OTHER}, not root, and its code would run as root; chown root:root {shown}; chmod go-w {shown}"
        )
    );
    // Not root: the caller's own files are read, whoever else could write.
    assert!(read_conf(&conf, &Trust::for_uid(OTHER)).is_ok());
}

#[test]
fn only_regular_files_of_a_mebibyte_are_read_by_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for trust in [root(), Trust::for_uid(OTHER)] {
        assert!(refusal(read_conf(&fifo, &trust)).ends_with(": it is a FIFO; name a regular file"));
        assert!(
            refusal(read_conf(Path::new("/dev/zero"), &trust))
                .ends_with(": it is a character device; name a regular file")
        );
        assert!(refusal(read_conf(dir.path(), &trust)).contains(": it is a directory;"));
    }
    let big = dir.path().join("big.conf");
    fs::write(&big, vec![b' '; (CONF_MAX_BYTES + 1) as usize]).unwrap();
    assert!(refusal(read_conf(&big, &root())).contains(": it is larger than 1 MiB;"));
    fs::write(&big, vec![b' '; CONF_MAX_BYTES as usize]).unwrap();
    assert!(read_conf(&big, &root()).is_ok());
}

#[test]
fn every_directory_on_the_path_is_judged() {
    let trust = root();
    let top = tempfile::tempdir().unwrap();
    let theirs = top.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    let conf = theirs.join("c.conf");
    fs::write(&conf, "()").unwrap();
    chown(&theirs, OTHER);
    let message = refusal(read_conf(&conf, &trust));
    assert_eq!(
        message,
        format!(
            "refusing the conf file {}: the directory {} on its path is owned by uid {OTHER}, not root; chown root:root {1}; chmod go-w {1} (or use a directory only root can change)",
            conf.display(),
            theirs.display()
        )
    );
    chown(&theirs, 0);
    mode(&theirs, 0o777);
    assert!(refusal(read_conf(&conf, &trust)).contains("is writable by others (mode 0777)"));
    // Root's and sticky (as /tmp): fine for a root-owned entry.
    mode(&theirs, 0o1777);
    assert!(read_conf(&conf, &trust).is_ok());
    chown(&conf, OTHER);
    assert!(read_conf(&conf, &trust).is_err());
}

#[test]
fn symbolic_links_are_followed_only_where_no_one_else_could_make_them() {
    let trust = root();
    let top = tempfile::tempdir().unwrap();
    let real = top.path().join("real.conf");
    fs::write(&real, "(:name \"real\")").unwrap();
    let link = top.path().join("link.conf");
    symlink(&real, &link).unwrap();
    assert_eq!(read_conf(&link, &trust).unwrap(), "(:name \"real\")");
    let relative = top.path().join("relative.conf");
    symlink("real.conf", &relative).unwrap();
    assert!(read_conf(&relative, &trust).is_ok());

    // A sticky shared directory: a link of another owner is not followed.
    let shared = top.path().join("shared");
    fs::create_dir(&shared).unwrap();
    mode(&shared, 0o1777);
    let planted = shared.join("planted.conf");
    symlink(&real, &planted).unwrap();
    chown(&planted, OTHER);
    assert!(
        refusal(read_conf(&planted, &trust))
            .contains("is a symbolic link that uid 4242, its owner, could point anywhere")
    );

    // Confined: a user's directory may be walked, but not its links.
    let home = top.path().join("home");
    fs::create_dir(&home).unwrap();
    chown(&home, OTHER);
    symlink(top.path(), home.join("logs")).unwrap();
    let out = home.join("logs").join("out.log");
    let user = Some((OTHER, OTHER));
    let result = open_append(&out, &trust, "the :output file", None, 0o640, user);
    assert!(refusal(result).contains("is a symbolic link that uid 4242, who can change"));
    assert!(!top.path().join("out.log").exists());
    // A third user's directory is not the daemon's user's to use.
    let result = open_append(
        &home.join("x.log"),
        &trust,
        "the :output file",
        None,
        0o640,
        None,
    );
    assert!(refusal(result).contains(" is owned by uid 4242, not root;"));
    let third = Some((OTHER + 1, OTHER + 1));
    let result = open_append(
        &home.join("x.log"),
        &trust,
        "the :output file",
        None,
        0o640,
        third,
    );
    assert!(
        refusal(result).contains(" is owned by uid 4242, not root or the daemon's user uid 4243;")
    );
}

#[test]
fn appended_files_are_new_or_single_regular_files() {
    let trust = root();
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious");
    fs::write(&precious, "keep\n").unwrap();
    let hard = dir.path().join("hard.log");
    fs::hard_link(&precious, &hard).unwrap();
    let result = open_append(&hard, &trust, "the log file", None, 0o640, None);
    assert!(refusal(result).contains("it has 2 hard links"));
    assert_eq!(fs::read_to_string(&precious).unwrap(), "keep\n");

    let fresh = dir.path().join("sub/new.log");
    let dirs = Create {
        mode: 0o755,
        owner: Some((OTHER, OTHER)),
    };
    let made = open_append(
        &fresh,
        &trust,
        "the log file",
        Some(dirs),
        0o640,
        Some((OTHER, OTHER)),
    )
    .unwrap();
    assert!(made.created);
    let st = nix::sys::stat::stat(&fresh).unwrap();
    assert_eq!((st.st_uid, st.st_mode & 0o777), (OTHER, 0o640));
    assert_eq!(
        nix::sys::stat::stat(&dir.path().join("sub"))
            .unwrap()
            .st_uid,
        OTHER
    );
    let user = Some((OTHER, OTHER));
    let again = open_append(&fresh, &trust, "the log file", None, 0o640, user).unwrap();
    assert!(!again.created);
    // The daemon's user's file in root's directory, for another daemon's
    // user: refused.
    let theirs = dir.path().join("theirs.log");
    fs::write(&theirs, "").unwrap();
    chown(&theirs, OTHER);
    let result = open_append(&theirs, &trust, "the log file", None, 0o640, Some((7, 7)));
    assert!(
        refusal(result).contains("it is owned by uid 4242, neither root nor the daemon's user")
    );
}

#[test]
fn the_lisp_program_is_roots_as_root() {
    let trust = root();
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("sbcl");
    fs::write(&program, "#!/bin/sh\n").unwrap();
    mode(&program, 0o755);
    assert!(check_program(&program, &trust).is_ok());
    chown(&program, OTHER);
    assert!(
        refusal(check_program(&program, &trust))
            .contains("owned by uid 4242, not root, and root would run it")
    );
    assert!(check_program(&program, &Trust::for_uid(OTHER)).is_ok());
}

#[test]
fn parent_components_are_taken_from_the_path_as_written() {
    let trust = root();
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    fs::create_dir(&home).unwrap();
    chown(&home, OTHER);
    fs::create_dir(home.join("sub")).unwrap();
    chown(&home.join("sub"), OTHER);
    // home/sub/../x.log is home/x.log, whatever home/sub is by then.
    let user = Some((OTHER, OTHER));
    let path = home.join("sub/../x.log");
    let made = open_append(&path, &trust, "the :output file", None, 0o640, user).unwrap();
    assert!(made.created && home.join("x.log").exists());
    let found = walk(
        &top.path().join("home/../home/x.log"),
        Policy::Confined { user },
        &trust,
        "x",
    );
    assert_eq!(found.unwrap().dir.path, home);
}
