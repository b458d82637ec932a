//! The CLI process of one run: started in a container of its own, stopped in stages, and
//! everything it started killed when it is done.
//!
//! The container comes from `process-wrap`: on Unix a new process group led by the CLI (so a
//! Ctrl-C in the user's terminal reaches us, not the CLI, and we decide how it stops); on
//! Windows a Job Object, which holds every process the CLI starts and is terminated as one.
//! Either way the child is also killed if the run's future is dropped.
//!
//! Stopping ([`Stopper`]) is staged: on Unix SIGINT to the CLI (it then stops its Bash tools
//! and prints a `result` line, fixtures README §3.7), then SIGTERM, then SIGKILL to its whole
//! group, `grace` apart. Windows has no signal a console-less daemon can send to one process,
//! so the first stage terminates the job at once: the CLI and all it started end together.
//! Bash tool processes run in process groups of their own on Unix and survive the CLI, so the
//! runner reaps them by the run's marker afterwards ([`crate::reaper`]).

use super::command::CliCommand;
use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::time::Instant;

/// A started CLI in its process group (Unix) or Job Object (Windows).
pub struct CliProcess {
    child: Box<dyn ChildWrapper>,
    pid: u32,
}

/// The CLI's standard streams, taken once after the start.
pub struct Pipes {
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts `cmd` with piped standard streams in a container of its own.
pub fn spawn(cmd: &CliCommand) -> std::io::Result<(CliProcess, Pipes)> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args)
        .current_dir(&cmd.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Built from an allow-list: nothing of our own environment is inherited implicitly.
    c.env_clear();
    for (k, v) in &cmd.env.plain {
        c.env(k, v);
    }
    for (k, v) in &cmd.env.secret {
        c.env(k, v.expose());
    }
    let mut wrap = CommandWrap::from(c);
    wrap.wrap(KillOnDrop);
    #[cfg(unix)]
    wrap.wrap(process_wrap::tokio::ProcessGroup::leader());
    #[cfg(windows)]
    wrap.wrap(process_wrap::tokio::JobObject);
    let mut child = wrap.spawn()?;
    let pid = child.id().unwrap_or(0);
    let stdin = child.stdin().take();
    let (Some(stdout), Some(stderr)) = (child.stdout().take(), child.stderr().take()) else {
        let _ = child.start_kill();
        return Err(std::io::Error::other(
            "the CLI's output pipes were not available",
        ));
    };
    let pipes = Pipes {
        stdin,
        stdout,
        stderr,
    };
    Ok((CliProcess { child, pid }, pipes))
}

impl CliProcess {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the CLI itself to exit (not for what it left running). Cancel-safe: the
    /// supervisor polls it in a `select!` loop.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        // One layer down is tokio's own child (the group/job wrapper is the only layer that
        // wraps; `KillOnDrop` only sets a flag). The wrapper's own `wait` would also wait for
        // every other member — on Windows the whole job, leftovers included.
        self.child.inner_mut().wait().await
    }

    /// Kills whatever is still in the CLI's container: its process group on Unix (members the
    /// CLI did not wait for, e.g. an MCP server), the whole job on Windows. Harmless when empty.
    pub fn kill_container(&mut self) {
        if let Err(e) = self.child.start_kill()
            && e.raw_os_error() != Some(ESRCH)
        {
            tracing::debug!(error = %e, "cannot kill the CLI's process container");
        }
    }

    fn send(&mut self, stage: Stage) {
        #[cfg(unix)]
        {
            use nix::sys::signal::Signal;
            let sig = match stage {
                Stage::Interrupt => Signal::SIGINT,
                Stage::Terminate => Signal::SIGTERM,
                Stage::Kill => return self.kill_container(),
            };
            // Only the CLI: it stops its own tools on SIGINT; its group is for the last stage.
            let _ = self.child.inner().signal(sig as i32);
        }
        #[cfg(not(unix))]
        {
            let _ = stage;
            self.kill_container();
        }
    }
}

/// "No such process": the container was already empty.
#[cfg(unix)]
const ESRCH: i32 = nix::libc::ESRCH;
#[cfg(not(unix))]
const ESRCH: i32 = -1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Interrupt,
    Terminate,
    Kill,
}

/// The stop sequence: interrupt, then terminate, then kill, `grace` apart.
pub struct Stopper {
    grace: Duration,
    last: Option<Stage>,
    next_at: Option<Instant>,
}

impl Stopper {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            last: None,
            next_at: None,
        }
    }

    /// True while a further stage is armed.
    pub fn pending(&self) -> bool {
        self.next_at.is_some()
    }

    /// The note for the run's output saying how the first stage stops the CLI.
    pub fn first_stage_note() -> &'static str {
        if cfg!(unix) {
            "interrupting the CLI (SIGINT)"
        } else {
            "terminating the CLI and every process it started (Job Object)"
        }
    }

    /// Sends the first stage once (the CLI then stops its tools and prints a result) and arms
    /// escalation.
    pub fn begin(&mut self, process: &mut CliProcess) {
        if self.last.is_none() {
            process.send(Stage::Interrupt);
            self.last = Some(Stage::Interrupt);
            // On Windows the first stage already ended everything: nothing to escalate.
            self.next_at = cfg!(unix).then(|| Instant::now() + self.grace);
        }
    }

    /// Resolves when the next stage is due (never, when none is armed).
    pub async fn next_step(&self) {
        match self.next_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Sends the next stage; returns a note for the run's output.
    pub fn escalate(&mut self, process: &mut CliProcess) -> Option<String> {
        match self.last {
            Some(Stage::Interrupt) => {
                process.send(Stage::Terminate);
                self.last = Some(Stage::Terminate);
                self.next_at = Some(Instant::now() + self.grace);
                Some(format!(
                    "the CLI did not stop within {} s of SIGINT: sent SIGTERM",
                    self.grace.as_secs()
                ))
            }
            Some(Stage::Terminate) => {
                process.send(Stage::Kill);
                self.last = Some(Stage::Kill);
                self.next_at = None;
                Some("the CLI did not stop after SIGTERM: sent SIGKILL to its process group".into())
            }
            Some(Stage::Kill) | None => {
                self.next_at = None;
                None
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> CliCommand {
        CliCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            // The environment is cleared at spawn: the script's commands need a PATH.
            env: crate::runner::environment::RunEnv {
                plain: vec![("PATH".into(), "/usr/bin:/bin".into())],
                secret: vec![],
            },
            cwd: std::env::temp_dir(),
        }
    }

    #[tokio::test]
    async fn a_process_that_ignores_sigint_and_sigterm_is_killed_with_its_group() {
        // Ignores the first two stages; a grandchild in the same group must die with it.
        let (mut p, pipes) =
            spawn(&sh("trap '' INT TERM; sleep 300 & echo started; wait")).expect("spawn");
        // Stop only once the traps are set, or SIGINT would end the shell at the first stage.
        let mut stdout = tokio::io::BufReader::new(pipes.stdout);
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
            .await
            .expect("read");
        assert_eq!(line.trim(), "started");
        let mut stopper = Stopper::new(Duration::from_millis(100));
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(p.pid()).expect("pid"));
        stopper.begin(&mut p);
        let mut notes = vec![];
        let status = loop {
            tokio::select! {
                s = p.wait() => break s.expect("wait"),
                _ = stopper.next_step(), if stopper.pending() => {
                    notes.extend(stopper.escalate(&mut p));
                }
            }
        };
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(!status.success());
        // The whole group is gone (the sleeper was killed with it).
        let deadline = Instant::now() + Duration::from_secs(10);
        while nix::sys::signal::killpg(pgid, None).is_ok() {
            assert!(Instant::now() < deadline, "the group survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_process_that_honours_sigint_stops_at_the_first_stage() {
        let (mut p, _pipes) = spawn(&sh("exec sleep 300")).expect("spawn");
        let mut stopper = Stopper::new(Duration::from_secs(60));
        stopper.begin(&mut p);
        let status = tokio::time::timeout(Duration::from_secs(30), p.wait())
            .await
            .expect("stopped by SIGINT alone")
            .expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(nix::libc::SIGINT));
        p.kill_container();
    }
}

#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_first_stage_terminates_the_job_with_everything_in_it() {
        // cmd starts a second cmd running ping for minutes: both hold the stdout pipe.
        let cmd = CliCommand {
            program: "cmd".into(),
            args: vec!["/C".into(), "cmd /C ping -n 300 127.0.0.1".into()],
            // The environment is cleared at spawn; cmd and ping need the system's variables.
            env: crate::runner::environment::RunEnv {
                plain: ["SystemRoot", "PATH", "PATHEXT", "COMSPEC"]
                    .iter()
                    .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
                    .collect(),
                secret: vec![],
            },
            cwd: std::env::temp_dir(),
        };
        let (mut p, mut pipes) = spawn(&cmd).expect("spawn");
        // Running: ping has printed its first line.
        let mut first = [0u8; 1];
        pipes.stdout.read_exact(&mut first).await.expect("output");
        let mut stopper = Stopper::new(Duration::from_secs(60));
        stopper.begin(&mut p);
        assert!(!stopper.pending(), "nothing left to escalate on Windows");
        let status = tokio::time::timeout(Duration::from_secs(30), p.wait())
            .await
            .expect("the CLI stopped")
            .expect("wait");
        assert!(!status.success());
        // The pipe closes only when every process holding it is gone.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), pipes.stdout.read_to_end(&mut rest))
            .await
            .expect("every process of the job ended")
            .expect("read");
    }
}
