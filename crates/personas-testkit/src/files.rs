//! Looking through what a test left on disk: every file under a directory, and which of them
//! hold some bytes (a secret must be in none of the data dir's files, WAL included).

use std::path::{Path, PathBuf};

/// Every regular file under `dir`, recursively (unreadable directories are skipped).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// Every file under `dir` (recursively) whose bytes contain `needle`, as display paths.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| {
                needle.is_empty() || bytes.windows(needle.len()).any(|w| w == needle)
            })
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_needle_in_nested_files_only() {
        let dir = tempfile::tempdir().expect("test step");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("test step");
        std::fs::write(dir.path().join("a/b/db-wal"), b"xx secret-value xx").expect("test step");
        std::fs::write(dir.path().join("a/clean"), b"nothing here").expect("test step");
        std::fs::write(dir.path().join("top"), b"secret-valu").expect("test step");
        let hits = files_containing(dir.path(), b"secret-value");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].ends_with("db-wal"), "{hits:?}");
        assert_eq!(files_under(dir.path()).len(), 3);
        assert!(files_containing(&dir.path().join("missing"), b"x").is_empty());
    }
}
