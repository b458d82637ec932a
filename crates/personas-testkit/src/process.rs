//! Looking at the machine's process table: whether a process a test started (a Claude CLI,
//! a Bash tool's `sleep`) is still alive after it should have been stopped.

use std::process::Command;

/// True when `ps` lists a live process (not a zombie) whose command line contains `needle`.
/// Give a needle unique to the test (a random marker), since other tests run at once.
pub fn process_table_has(needle: &str) -> bool {
    let out = Command::new("ps")
        .args(["-eo", "pid,stat,args"])
        .output()
        .expect("process_table_has: cannot run ps");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.contains(needle)
            && !l
                .split_whitespace()
                .nth(1)
                .is_some_and(|stat| stat.starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_live_child_and_not_a_reaped_one() {
        let marker = format!("{}", 7_000_000 + std::process::id() % 1_000_000);
        let mut child = Command::new("sleep")
            .arg(&marker)
            .spawn()
            .expect("test step");
        assert!(process_table_has(&format!("sleep {marker}")));
        child.kill().expect("test step");
        child.wait().expect("test step");
        assert!(!process_table_has(&format!("sleep {marker}")));
    }
}
