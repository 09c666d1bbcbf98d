//! The rbac-server binary as a child process: the one way the tests start it.
//!
//! A [`Process`] keeps every line its stdout and stderr write, as they arrive, so that a test
//! can wait for a line (the "listening" one, say) instead of sleeping, read the logs, stop the
//! process with SIGTERM as an orchestrator would, or wait for it to end by itself. Set
//! TEST_LOG=1 to see the lines as they come; stderr, where the server says why it died, is
//! shown always. [`Process::run`] runs the binary to its end, for the tests of a start that
//! must be refused. A process still running when its [`Process`] is dropped is killed.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use rbac_server::config::Config;

/// What the binary's environment holds before the variables a test gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// The test process's own, less every variable the server reads as configuration (and
    /// RUST_LOG), with PORT=0 and HOST=127.0.0.1: a server on a free loopback port configured
    /// by nothing but what the test gives, whatever the shell running the tests exports.
    Inherited,
    /// PATH alone, not even a port: for a start that must be refused, where every variable
    /// the server sees is part of the case.
    PathOnly,
}

/// Every environment variable the server reads as configuration, with the flag that sets the
/// same, from the server's own flags: one added to `Config` is covered here too.
pub fn configuration_flags() -> Vec<(String, String)> {
    Config::command()
        .get_arguments()
        .filter_map(|argument| {
            let variable = argument.get_env()?.to_string_lossy().into_owned();
            Some((variable, format!("--{}", argument.get_long()?)))
        })
        .collect()
}

/// One rbac-server process and the lines it has written so far.
pub struct Process {
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
}

/// How a run to the end went: [`Process::run`].
#[derive(Debug)]
pub struct Exit {
    /// None when it was still running at the deadline (and was killed).
    pub status: Option<ExitStatus>,
    /// Everything written to stderr, a line ending after each line.
    pub stderr: String,
    /// From the start to the exit, or to the deadline.
    pub took: Duration,
}

impl Exit {
    /// What is wrong with this run as a start refused, if anything: it must end by itself,
    /// with an exit code that is neither success nor a panic's 101, and write exactly one
    /// line on stderr, `rbac-server: ...` naming `names`, with no panic in it.
    pub fn refusal_problems(&self, names: &str) -> Vec<String> {
        let mut problems = Vec::new();
        match self.status {
            None => problems.push(format!("still running after {:?}", self.took)),
            Some(status) if status.success() => problems.push("exited with success".into()),
            Some(status) if status.code().is_none() => problems.push(format!("died: {status}")),
            Some(status) if status.code() == Some(101) => {
                problems.push("exit code 101 (a panic)".into())
            }
            Some(_) => {}
        }
        let line = self.stderr.trim();
        if line.lines().count() != 1 {
            problems.push("stderr is not exactly one line".into());
        }
        if !line.starts_with("rbac-server: ") {
            problems.push("stderr does not start with `rbac-server: `".into());
        }
        if line.contains("panicked") {
            problems.push("stderr shows a panic".into());
        }
        if !line.contains(names) {
            problems.push(format!("stderr does not name {names}"));
        }
        problems
    }
}

/// The lines both outputs have written, shared with the threads that read them.
struct Output {
    /// stdout's and stderr's lines, in the order they arrived.
    lines: Arc<Mutex<Vec<String>>>,
    streams: Mutex<Streams>,
    /// Signalled at every line and at the close of either output: what a wait waits on.
    changed: Condvar,
}

struct Streams {
    /// stderr's lines alone: the start-up refusal is the one line there.
    stderr: Vec<String>,
    /// Outputs not closed yet; none once the process has exited.
    open: usize,
}

/// Why a wait on the output ended.
enum Waited<T> {
    /// What was waited for.
    Done(T),
    /// Both outputs closed first: the process has exited.
    Closed,
    TimedOut,
}

impl Output {
    /// Blocks until `find` finds something in the lines so far, or both outputs close, or
    /// `within` passes, whichever comes first.
    fn wait<T>(&self, within: Duration, find: impl Fn(&[String]) -> Option<T>) -> Waited<T> {
        let deadline = Instant::now() + within;
        // A reader takes `streams` to signal after every line, so a line added after `find`
        // looked cannot be missed: the wait below lets go of `streams` and listens at once.
        let mut streams = self.streams.lock().unwrap();
        loop {
            if let Some(found) = find(&self.lines.lock().unwrap()) {
                return Waited::Done(found);
            }
            if streams.open == 0 {
                return Waited::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::TimedOut;
            }
            streams = self.changed.wait_timeout(streams, left).unwrap().0;
        }
    }

    /// Whether both outputs close within `within`: the process exits (it closes them then).
    fn closed_within(&self, within: Duration) -> bool {
        matches!(self.wait(within, |_| None::<()>), Waited::Closed)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Process {
    /// Starts the binary with `env` on top of `environment`. Its lines are echoed, when they
    /// are, under its SERVER_ID.
    pub fn start(environment: Environment, env: &[(impl AsRef<OsStr>, impl AsRef<OsStr>)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rbac-server"));
        match environment {
            Environment::Inherited => {
                for (variable, _) in configuration_flags() {
                    command.env_remove(variable);
                }
                command
                    .env_remove("RUST_LOG")
                    .env("PORT", "0")
                    .env("HOST", "127.0.0.1");
            }
            Environment::PathOnly => {
                command
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default());
            }
        }
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = env
            .iter()
            .find(|(k, _)| k.as_ref() == "SERVER_ID")
            .map_or("rbac-server".into(), |(_, v)| {
                v.as_ref().to_string_lossy().into_owned()
            });
        let mut child = command.spawn().expect("start rbac-server");
        let output = Arc::new(Output {
            lines: Arc::default(),
            streams: Mutex::new(Streams {
                stderr: Vec::new(),
                open: 2,
            }),
            changed: Condvar::new(),
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            read_lines(stdout, false, name.clone(), output.clone()),
            read_lines(stderr, true, name, output.clone()),
        ];
        Self {
            child,
            output,
            readers,
        }
    }

    /// Runs the binary with `env` on top of `environment` to its end, killing it at
    /// `deadline`: for a start that must be refused.
    pub fn run(
        environment: Environment,
        env: &[(impl AsRef<OsStr>, impl AsRef<OsStr>)],
        deadline: Duration,
    ) -> Exit {
        let mut process = Self::start(environment, env);
        let started = Instant::now();
        let status = if process.output.closed_within(deadline) {
            Some(process.reap())
        } else {
            let _ = process.child.kill();
            process.reap();
            None
        };
        let took = started.elapsed();
        let streams = process.output.streams.lock().unwrap();
        let stderr = streams
            .stderr
            .iter()
            .map(|line| format!("{line}\n"))
            .collect();
        drop(streams);
        Exit {
            status,
            stderr,
            took,
        }
    }

    /// The first line `matches` accepts, once one is written; fails the test, showing every
    /// line, if the process ends first or `within` passes.
    pub async fn wait_for(
        &self,
        within: Duration,
        matches: impl Fn(&str) -> bool + Send + 'static,
    ) -> String {
        let output = self.output.clone();
        let found = tokio::task::spawn_blocking(move || {
            output.wait(within, |lines| lines.iter().find(|l| matches(l)).cloned())
        })
        .await
        .unwrap();
        let lines = self.output.lines();
        match found {
            Waited::Done(line) => line,
            Waited::Closed => panic!(
                "rbac-server exited without writing such a line:\n{}",
                lines.join("\n")
            ),
            Waited::TimedOut => panic!(
                "rbac-server wrote no such line within {within:?}:\n{}",
                lines.join("\n")
            ),
        }
    }

    /// The address in the "listening" line, once written; fails the test if it never is.
    pub async fn listening_address(&self) -> String {
        let line = self
            .wait_for(Duration::from_secs(60), |line| {
                listening_address(line).is_some()
            })
            .await;
        listening_address(&line).unwrap()
    }

    /// Every line written so far, stdout's and stderr's, in the order they arrived.
    pub fn lines(&self) -> Vec<String> {
        self.output.lines()
    }

    /// The lines as they keep arriving, readable after the process is gone.
    pub fn lines_handle(&self) -> Arc<Mutex<Vec<String>>> {
        self.output.lines.clone()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sets the process's soft limit on the size of a file it writes (RLIMIT_FSIZE), in bytes,
    /// or lifts it (None); its hard limit stays, so that the limit may be lifted again.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let pid = self.child.id() as libc::pid_t;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads the process's limit into `limit`, a valid rlimit.
        let read = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut limit) };
        assert_eq!(read, 0, "{}", std::io::Error::last_os_error());
        limit.rlim_cur = bytes.unwrap_or(libc::RLIM_INFINITY);
        // SAFETY: prlimit reads the new limit from `limit`, a valid rlimit.
        let set = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
        assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
    }

    /// Stops the process with SIGTERM, as an orchestrator does; returns how it exited and
    /// every line it wrote, the last ones included.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        // SAFETY: kill takes any pid and signal; the child is not reaped yet, so its pid is
        // still its own.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "{}", std::io::Error::last_os_error());
        let status = self.reap();
        (status, self.output.lines())
    }

    /// Waits for the process to end by itself; returns how, and every line it wrote. Fails
    /// the test, killing the process, if it is still running after `within`.
    pub fn wait_for_exit(mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        if !self.output.closed_within(within) {
            let _ = self.child.kill();
            self.reap();
            panic!(
                "rbac-server still running after {within:?}:\n{}",
                self.output.lines().join("\n")
            );
        }
        let status = self.reap();
        (status, self.output.lines())
    }

    /// Waits for the exit and for the last lines to be read.
    fn reap(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("wait for rbac-server");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Once reaped, `kill` does nothing: std never signals a pid it has waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thread that keeps the lines of one output, until it closes.
fn read_lines(
    output: impl Read + Send + 'static,
    is_stderr: bool,
    name: String,
    shared: Arc<Output>,
) -> JoinHandle<()> {
    let echo = is_stderr || std::env::var_os("TEST_LOG").is_some();
    let label = if is_stderr {
        format!("{name} stderr")
    } else {
        name
    };
    std::thread::spawn(move || {
        let mut output = BufReader::new(output);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match output.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&bytes);
            let line = text.strip_suffix('\n').unwrap_or(&text);
            let line = line.strip_suffix('\r').unwrap_or(line).to_owned();
            if echo {
                eprintln!("[{label}] {line}");
            }
            shared.lines.lock().unwrap().push(line.clone());
            let mut streams = shared.streams.lock().unwrap();
            if is_stderr {
                streams.stderr.push(line);
            }
            shared.changed.notify_all();
        }
        shared.streams.lock().unwrap().open -= 1;
        shared.changed.notify_all();
    })
}

/// The address in a "listening" line, written as JSON or as text (LOG_FORMAT).
fn listening_address(line: &str) -> Option<String> {
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
        return (event["message"] == "listening")
            .then(|| event["addr"].as_str().map(str::to_owned))
            .flatten();
    }
    let (_, fields) = line.split_once(" listening ")?;
    let (_, rest) = fields.split_once("addr=")?;
    Some(rest.split_whitespace().next()?.to_owned())
}
