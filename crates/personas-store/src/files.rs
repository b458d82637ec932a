//! Who may read the data dir: the layout's private parts and their modes (Unix).
//!
//! The data dir holds run output, webhook secrets and the vault's wrapped key with its salt, so
//! another local user must not read any of it: the dir itself is 0700; the database with its
//! WAL/SHM, `config.toml` and `api-token` are 0600; the workspaces and per-run dirs are 0700.
//! Everything is created with those modes (set explicitly after creation, so the user's umask
//! cannot widen them), and [`secure_data_dir`] checks them at start-up (`personas up`, the
//! desktop host, `personas doctor`): a wrong mode is reported and, when the current user owns
//! the file, fixed. On Windows the data dir lives under the user's profile, whose ACL already
//! keeps other users out; nothing is checked there.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Files in the data dir that must be private (0600), besides the database's own.
pub const PRIVATE_FILES: &[&str] = &["config.toml", "api-token"];
/// Directories in the data dir that must be private (0700); their direct children too.
pub const PRIVATE_DIRS: &[&str] = &["workspaces", "run"];

/// Mode for private directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode for private files.
pub const FILE_MODE: u32 = 0o600;

/// One path whose mode was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeReport {
    pub path: PathBuf,
    /// The mode found (permission bits).
    pub found: u32,
    /// The mode it must have.
    pub wanted: u32,
    /// Whether it was changed to `wanted` (false: not ours, or the change failed).
    pub fixed: bool,
    /// Why it could not be fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl std::fmt::Display for ModeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was {:04o} (readable by others), must be {:04o}",
            self.path.display(),
            self.found,
            self.wanted
        )?;
        match (&self.fixed, &self.problem) {
            (true, _) => write!(f, ": changed to {:04o}", self.wanted),
            (false, Some(p)) => write!(f, ": not changed ({p})"),
            (false, None) => write!(f, ": not changed"),
        }
    }
}

/// Creates `dir` (and missing parents) and makes `dir` itself 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let existed = dir.is_dir();
    std::fs::create_dir_all(dir)?;
    if !existed {
        set_mode(dir, DIR_MODE)?;
    }
    Ok(())
}

/// Creates an empty file at `path` with mode 0600 unless it exists (mode left as it is).
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    match opts.open(path) {
        Ok(_) => set_mode(path, FILE_MODE),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets the permission bits of `path` (no-op off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Checks the data dir's private parts and fixes what the current user owns. Returns what was
/// wrong (empty when everything is private). Missing paths are not an error.
pub fn secure_data_dir(data_dir: &Path) -> Vec<ModeReport> {
    let mut out = Vec::new();
    check(data_dir, DIR_MODE, &mut out);
    for name in [
        crate::DB_FILE.to_string(),
        format!("{}-wal", crate::DB_FILE),
        format!("{}-shm", crate::DB_FILE),
    ]
    .iter()
    .map(String::as_str)
    .chain(PRIVATE_FILES.iter().copied())
    {
        check(&data_dir.join(name), FILE_MODE, &mut out);
    }
    for name in PRIVATE_DIRS {
        let dir = data_dir.join(name);
        check(&dir, DIR_MODE, &mut out);
        // Each persona's workspace and each run's files.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let mode = match entry.file_type() {
                    Ok(t) if t.is_dir() => DIR_MODE,
                    Ok(t) if t.is_file() => FILE_MODE,
                    _ => continue,
                };
                check(&entry.path(), mode, &mut out);
            }
        }
    }
    out
}

#[cfg(unix)]
fn check(path: &Path, wanted: u32, out: &mut Vec<ModeReport>) {
    use std::os::unix::fs::MetadataExt;
    // symlink_metadata: a symlink's target is not ours to judge (and chmod would follow it).
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let found = meta.mode() & 0o7777;
    // Only bits beyond the wanted ones are a problem (a 0500 dir is private, if odd).
    if found & !wanted == 0 {
        return;
    }
    let mine = meta.uid() == current_uid();
    let (fixed, problem) = if !mine {
        (
            false,
            Some(format!("owned by uid {}, not by this user", meta.uid())),
        )
    } else {
        match set_mode(path, found & wanted) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        }
    };
    out.push(ModeReport {
        path: path.to_path_buf(),
        found,
        wanted: if fixed { found & wanted } else { wanted },
        fixed,
        problem,
    });
}

#[cfg(not(unix))]
fn check(_path: &Path, _wanted: u32, _out: &mut Vec<ModeReport>) {}

#[cfg(unix)]
fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
