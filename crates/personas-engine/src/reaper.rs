//! Finding and killing the processes a run leaves behind.
//!
//! The CLI's Bash tool runs commands in their own process groups, and they survive SIGTERM or
//! SIGKILL of the CLI (fixtures README §3.7), reparented away from us. So every run's CLI gets
//! `PERSONAS_EXECUTION_ID=<id>` in its environment, which its descendants inherit; on Linux the
//! reaper finds them by that marker in `/proc/<pid>/environ` — wherever they were reparented,
//! and even after the daemon itself crashed and restarted. Each one found is killed together
//! with its process group.

use std::collections::HashMap;

/// Environment variable that marks every process of one execution.
pub const MARKER_VAR: &str = "PERSONAS_EXECUTION_ID";

/// True if a process with this pid exists (it may be a zombie).
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
            Ok(()) => true,
            Err(Errno::EPERM) => true,
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Processes carrying the marker of one of `execution_ids`: pid → execution id.
pub fn find_marked(execution_ids: &[&str]) -> HashMap<u32, String> {
    let mut found = HashMap::new();
    #[cfg(target_os = "linux")]
    {
        if execution_ids.is_empty() {
            return found;
        }
        let me = std::process::id();
        let needles: Vec<(Vec<u8>, &str)> = execution_ids
            .iter()
            .map(|id| (format!("{MARKER_VAR}={id}").into_bytes(), *id))
            .collect();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            // Unreadable (other users' processes, or gone already): not ours.
            let Ok(env) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            for var in env.split(|b| *b == 0) {
                if let Some((_, id)) = needles.iter().find(|(n, _)| n.as_slice() == var) {
                    found.insert(pid, (*id).to_string());
                    break;
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = execution_ids;
    }
    found
}

/// SIGKILLs each process and, when it leads a process group other than ours, its whole group.
pub fn kill_all(pids: impl IntoIterator<Item = u32>) -> usize {
    let mut killed = 0;
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, kill, killpg};
        use nix::unistd::{Pid, getpgid, getpgrp};
        let ours = getpgrp();
        for pid in pids {
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            let p = Pid::from_raw(raw);
            if let Ok(group) = getpgid(Some(p))
                && group != ours
                && group == p
            {
                let _ = killpg(group, Signal::SIGKILL);
            }
            if kill(p, Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pids;
    }
    killed
}

/// Kills every leftover process of these executions; returns how many were found.
pub fn reap(execution_ids: &[&str]) -> usize {
    let found = find_marked(execution_ids);
    if !found.is_empty() {
        tracing::info!(
            count = found.len(),
            "killing processes left behind by executions"
        );
    }
    kill_all(found.keys().copied());
    found.len()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn marked_orphans_in_their_own_group_are_found_and_killed() {
        use std::os::unix::process::CommandExt;
        let id = uuid::Uuid::new_v4().to_string();
        // A shell in its own process group starting a sleeper, like the CLI's Bash tool.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("sleep 300 & sleep 300; wait")
            .env(MARKER_VAR, &id)
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        // The marker is visible as soon as the shell has exec'd; both sleeps follow.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while find_marked(&[&id]).len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "children never appeared"
            );
            std::thread::yield_now();
        }
        assert_eq!(reap(&[&id]), 3);
        let _ = child.wait();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !find_marked(&[&id]).is_empty() {
            assert!(std::time::Instant::now() < deadline, "processes survived");
            std::thread::yield_now();
        }
        assert!(find_marked(&["some-other-id"]).is_empty());
    }
}
