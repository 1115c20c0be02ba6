//! Running a test body where a hang or an abort cannot take the whole test
//! run down: in a child process (this test binary again, one case selected by
//! an environment variable), and in a forked child with a bounded wait.
//!
//! Shared by `tests/matrix.rs` and `tests/fork.rs` through `#[path]`.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that selects the case a child process runs.
pub const CASE_ENV: &str = "BRIDGE_CHILD_CASE";

/// The line a child process prints with its outcome.
const OUTCOME: &str = "CHILD-OUTCOME";

/// A case's outcome: `Ok(what it gave)` when that is a value or a documented
/// error, `Err(what went wrong)` otherwise.
pub type Verdict = Result<String, String>;

/// How a case ended, seen from the parent.
#[derive(Clone, Debug)]
pub enum Ended {
    /// It ran and its outcome is acceptable.
    Passed(String),
    /// It ran and its outcome is wrong.
    Wrong(String),
    /// It did not finish in time: killed by the parent, or a hang it saw
    /// itself (text starting with `hang:`).
    Hung(String),
    /// It died: an abort, a signal, or an exit without an outcome.
    Died(String),
}

impl Ended {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        matches!(self, Ended::Passed(_))
    }

    /// One word for a table cell.
    pub fn word(&self) -> &'static str {
        match self {
            Ended::Passed(_) => "ok",
            Ended::Wrong(_) => "WRONG",
            Ended::Hung(_) => "HANG",
            Ended::Died(_) => "DIED",
        }
    }

    /// The details.
    pub fn detail(&self) -> String {
        match self {
            Ended::Passed(s) | Ended::Wrong(s) | Ended::Died(s) | Ended::Hung(s) => s.clone(),
        }
    }
}

/// The case this process was started for, if it is a child process.
pub fn selected_case() -> Option<String> {
    std::env::var(CASE_ENV).ok()
}

/// In a child process: prints the outcome for the parent and exits (0 for
/// an acceptable outcome). Never returns.
pub fn report_and_exit(v: Verdict) -> ! {
    use std::io::Write;
    let (code, kind, text) = match v {
        Ok(t) => (0, "ok", t),
        Err(t) => (1, "wrong", t),
    };
    let text = text.replace('\n', " | ");
    // On a line of its own: the harness may have started one ("test x ... ").
    println!("\n{OUTCOME} {kind} {text}");
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Runs `test` (the name of a `#[test]` of this binary) again in a child
/// process with [`CASE_ENV`] set to `case`, killing it after `timeout`.
pub fn run_case_process(test: &str, case: &str, envs: &[(&str, &str)], timeout: Duration) -> Ended {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_ENV, case)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the child process");
    let out = reader(child.stdout.take().expect("piped"));
    let err = reader(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("poll the child process") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Ended::Hung(format!("hang: no outcome within {timeout:?} (killed)"));
    };
    let outcome = out
        .lines()
        .find_map(|l| l.split_once(OUTCOME).map(|(_, r)| r.trim().to_owned()));
    match outcome {
        Some(o) if status.success() => match o.strip_prefix("ok") {
            Some(t) => Ended::Passed(t.trim().to_owned()),
            None => Ended::Died(format!("unexpected outcome line: {o}")),
        },
        Some(o) => {
            let text = o.strip_prefix("wrong").unwrap_or(&o).trim().to_owned();
            // A hang or a death the case saw from inside (a forked child, a
            // thread of its own) counts as such.
            if text.starts_with("hang:") {
                Ended::Hung(text)
            } else if text.starts_with("died:") {
                Ended::Died(text)
            } else {
                Ended::Wrong(text)
            }
        }
        None => Ended::Died(format!(
            "{status} without an outcome; stderr: {}",
            tail(&err)
        )),
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// The last few lines of a child's stderr, on one line.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

/// The message of a caught panic.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Forks; the child runs `f` on its only thread, reports through a pipe and
/// `_exit`s; the parent waits at most `timeout` (then kills the child).
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn in_forked_child(timeout: Duration, f: impl FnOnce() -> Verdict) -> Verdict {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for the pipe's ends.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only runs `f` (this crate's calls under test), writes
    // with `libc::write` and leaves with `_exit`: no unwinding back into the
    // test harness, no atexit handlers, no flushing of the parent's buffers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: plain system calls on this child's own descriptors; the
        // death signal makes the child go with the process that forked it.
        unsafe {
            libc::close(fds[0]);
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        }
        let v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&*p))));
        let (code, text) = match v {
            Ok(t) => (0, t),
            Err(t) => (1, t),
        };
        let mut bytes = text.as_bytes();
        while !bytes.is_empty() {
            // SAFETY: writes from a live slice to the pipe's write end.
            let n = unsafe { libc::write(fds[1], bytes.as_ptr().cast(), bytes.len()) };
            if n <= 0 {
                break;
            }
            bytes = &bytes[n as usize..];
        }
        // SAFETY: ends the child at once, as a forked child of a
        // multi-threaded process must.
        unsafe { libc::_exit(code) }
    }
    // SAFETY: the parent closes its copy of the write end, then owns the read end.
    let mut pipe = unsafe {
        libc::close(fds[1]);
        std::fs::File::from_raw_fd(fds[0])
    };
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    let hung = loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break false;
        }
        assert!(r == 0, "waitpid failed");
        if Instant::now() >= deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut text = String::new();
    let _ = pipe.read_to_string(&mut text);
    if hung {
        return Err(format!(
            "hang: the forked child gave no outcome within {timeout:?} (killed); it said: {text:?}"
        ));
    }
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(text),
            1 => Err(text),
            code => Err(format!("died: the forked child exited with {code}: {text}")),
        }
    } else if libc::WIFSIGNALED(status) {
        Err(format!(
            "died: the forked child was killed by signal {} (an abort is 6): {text}",
            libc::WTERMSIG(status)
        ))
    } else {
        Err(format!("died: the forked child ended with status {status}"))
    }
}
