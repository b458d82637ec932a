//! Finding and killing the processes a run leaves behind, and telling whether a pid is alive,
//! on Linux, macOS and Windows.
//!
//! The CLI's Bash tool runs commands in their own process groups, and they survive SIGTERM or
//! SIGKILL of the CLI (fixtures README §3.7), reparented away from us. So every run's CLI gets
//! `PERSONAS_EXECUTION_ID=<id>` in its environment, which its descendants inherit, and the
//! reaper finds them by that marker — wherever they were reparented, and even after the daemon
//! itself crashed and restarted. Each one found is killed (on Unix together with its process
//! group).
//!
//! How the marker is read: on Linux straight from `/proc/<pid>/environ` (measured ~5× faster
//! than `sysinfo`, which reads the same files plus each process's `stat`: 9 ms against 45–56 ms
//! for 140 processes, `benches/reaper.rs`); on macOS and Windows through `sysinfo`, which reads
//! the environment of the user's own processes (`KERN_PROCARGS2`, the process block on
//! Windows). On Windows a run is also held in a Job Object ([`crate::runner::process`]), so the
//! reaper there only matters for what escaped the job and for runs of a daemon that crashed.

use std::collections::HashMap;

/// Environment variable that marks every process of one execution.
pub const MARKER_VAR: &str = "PERSONAS_EXECUTION_ID";

/// True if a process with this pid exists (it may be a zombie).
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        // Signal 0 checks existence and permission without sending anything: one syscall.
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
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
        let pid = Pid::from_u32(pid);
        let mut system = System::new();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing(),
        );
        system.process(pid).is_some()
    }
}

/// Processes carrying the marker of one of `execution_ids`: pid → execution id.
pub fn find_marked(execution_ids: &[&str]) -> HashMap<u32, String> {
    if execution_ids.is_empty() {
        return HashMap::new();
    }
    #[cfg(target_os = "linux")]
    {
        find_marked_in_proc(execution_ids)
    }
    #[cfg(not(target_os = "linux"))]
    {
        find_marked_with_sysinfo(execution_ids)
    }
}

/// The marker entries to look for, each with the execution it names.
fn needles<'a>(execution_ids: &[&'a str]) -> Vec<(String, &'a str)> {
    execution_ids
        .iter()
        .map(|id| (format!("{MARKER_VAR}={id}"), *id))
        .collect()
}

/// Linux: every readable `/proc/<pid>/environ`.
#[cfg(target_os = "linux")]
pub fn find_marked_in_proc(execution_ids: &[&str]) -> HashMap<u32, String> {
    let mut found = HashMap::new();
    let me = std::process::id();
    let needles = needles(execution_ids);
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
            if let Some((_, id)) = needles.iter().find(|(n, _)| n.as_bytes() == var) {
                found.insert(pid, (*id).to_string());
                break;
            }
        }
    }
    found
}

/// Every OS: the process table and environments as `sysinfo` reads them.
pub fn find_marked_with_sysinfo(execution_ids: &[&str]) -> HashMap<u32, String> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
    let mut found = HashMap::new();
    let me = std::process::id();
    let needles = needles(execution_ids);
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_environ(UpdateKind::Always),
    );
    for (pid, process) in system.processes() {
        let pid = pid.as_u32();
        if pid == me {
            continue;
        }
        let hit = process.environ().iter().find_map(|var| {
            let var = var.to_str()?;
            needles.iter().find(|(n, _)| n == var).map(|(_, id)| *id)
        });
        if let Some(id) = hit {
            found.insert(pid, id.to_string());
        }
    }
    found
}

/// Kills each process — on Unix with SIGKILL and, when it leads a process group other than
/// ours, its whole group (a Bash tool's shell leads the group of what it started). Returns how
/// many were killed.
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
        // Windows has no process groups to signal: each marked process is terminated on its
        // own, and every one of them carries the marker, so none is missed.
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
        let pids: Vec<Pid> = pids.into_iter().map(Pid::from_u32).collect();
        let mut system = System::new();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing(),
        );
        for pid in &pids {
            if system.process(*pid).is_some_and(|p| p.kill()) {
                killed += 1;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new(if cfg!(windows) { "cmd" } else { "true" })
            .args(if cfg!(windows) {
                &["/C", "exit"][..]
            } else {
                &[][..]
            })
            .spawn()
            .expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        // Reaped: the pid names no process (unless reused within these microseconds, which a
        // fresh pid space makes vanishingly unlikely).
        assert!(!pid_alive(pid));
        assert!(!pid_alive(u32::MAX - 1));
    }

    #[test]
    fn no_execution_ids_find_nothing() {
        assert!(find_marked(&[]).is_empty());
        assert!(find_marked_with_sysinfo(&["not-an-execution"]).is_empty());
    }
}

#[cfg(all(test, target_os = "linux"))]
mod linux_tests {
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
        // The portable reader (macOS, Windows) sees exactly what /proc shows.
        assert_eq!(
            find_marked_with_sysinfo(&[&id]),
            find_marked_in_proc(&[&id])
        );
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
