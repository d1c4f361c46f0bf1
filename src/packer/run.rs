//! One `packer build` run: in its own process group, its machine-readable output parsed
//! and printed redacted as it arrives, a heartbeat while it is quiet, a deadline, and
//! when the caller's `stop` says so (SIGINT/SIGTERM, which the caller watches) an
//! interrupt of the whole group, a grace period for packer's cleanup, then a kill.
//! Nothing of the run outlives it.
//!
//! Packer writes into files of the private work directory, not into pipes: should the
//! tool be killed outright, packer gets its death signal and must be able to print its
//! cleanup. Writing to a pipe nobody reads would kill it with SIGPIPE first.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::machine::{self, Event, UiLevel};
use super::{Packer, PackerError};
use crate::secrets::Redactor;

/// What to run and how long to let it go.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub template: PathBuf,
    pub var_file: PathBuf,
    /// The one builder to run (`-only`).
    pub only: String,
    pub cwd: PathBuf,
    /// The whole run ends at this instant.
    pub deadline: Instant,
    /// A heartbeat line after this long without output.
    pub heartbeat: Duration,
    /// After an interrupt caused by the deadline, how long packer may clean up.
    pub deadline_grace: Duration,
    /// After SIGINT/SIGTERM: GitHub Actions kills the job 10 s after its first SIGINT.
    pub signal_grace: Duration,
    /// Fold output into `::group::` blocks (GitHub Actions).
    pub ci_groups: bool,
    /// The run talks to the cloud (the openstack builder): packer gets the OS_* variables.
    pub cloud: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Packer exited by itself.
    Exited {
        code: Option<i32>,
        /// Artifact IDs of the `only` build, by index, from the artifact lines.
        artifact_ids: Vec<String>,
        /// `artifact-count` of the `only` build (0 when packer never said).
        artifact_count: u32,
        /// Build errors packer reported, else its UI errors (a template that fails to
        /// prepare reports only those); not yet redacted.
        errors: Vec<String>,
    },
    /// The deadline passed; packer was interrupted.
    TimedOut,
    /// The caller's `stop` said so (SIGINT or SIGTERM reached the tool); packer was
    /// interrupted.
    Interrupted,
}

enum Line {
    Out(String),
    Err(String),
    Closed,
}

/// Sends `signal` to every process of the group led by `child`.
fn signal_group(child: &Child, signal: libc::c_int) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid addresses the process group we created.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Follows a file packer writes, line by line into the channel (bytes that are not
/// UTF-8 are replaced), until packer has exited (`done`) and the file is read to its end.
fn follow(
    mut source: File,
    done: Arc<AtomicBool>,
    tx: mpsc::Sender<Line>,
    wrap: fn(String) -> Line,
) {
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let send = |line: &[u8]| {
            let text = String::from_utf8_lossy(line);
            tx.send(wrap(text.trim_end_matches(['\n', '\r']).to_string()))
                .is_ok()
        };
        loop {
            // Read before looking at `done`: what packer wrote before it exited is read.
            let finished = done.load(Ordering::SeqCst);
            match source.read(&mut chunk) {
                Ok(0) | Err(_) if finished => break,
                Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(50)),
                Ok(n) => {
                    pending.extend_from_slice(&chunk[..n]);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        if !send(&line) {
                            return;
                        }
                    }
                }
            }
        }
        if !pending.is_empty() {
            send(&pending);
        }
        let _ = tx.send(Line::Closed);
    });
}

/// A file for packer's output in the work directory: 0600 (packer does not redact its
/// machine-readable output), removed with the directory.
fn output_file(dir: &std::path::Path) -> std::io::Result<(File, File)> {
    let file = tempfile::Builder::new()
        .prefix("packer-output-")
        .tempfile_in(dir)?;
    let (write, path) = file.keep().map_err(|e| e.error)?;
    let read = File::open(&path)?;
    // Both handles stay open; the name is not needed any more.
    std::fs::remove_file(&path)?;
    Ok((write, read))
}

/// Prints packer's events for a person; every line goes through the redactor first.
pub struct Printer<'a, W: Write> {
    pub out: W,
    pub redactor: &'a Redactor,
    /// The secrets as packer's machine-readable output writes them, for raw lines.
    raw_redactor: Redactor,
    pub ci_groups: bool,
    group_open: bool,
    /// The last `==> ` line: what packer is doing now, for the heartbeat.
    pub phase: String,
}

impl<'a, W: Write> Printer<'a, W> {
    pub fn new(out: W, redactor: &'a Redactor, ci_groups: bool) -> Self {
        Printer {
            out,
            raw_redactor: redactor.with_packer_escapes(),
            redactor,
            ci_groups,
            group_open: false,
            phase: String::from("starting"),
        }
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{}", self.redactor.redact(text));
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::Ui { level, text } => {
                // Whole, before it is split into lines: a secret packer wrapped spans two.
                let text = self.redactor.redact(text);
                let text = text.trim_start_matches('\n');
                if *level == UiLevel::Say {
                    if let Some(phase) = text.strip_prefix("==> ") {
                        self.phase = phase.to_string();
                        if self.ci_groups {
                            self.end_group();
                            let _ = writeln!(self.out, "::group::{}", self.redactor.redact(phase));
                            self.group_open = true;
                        }
                    }
                }
                for line in text.split('\n') {
                    self.line(line);
                }
            }
            Event::BuildError { build, text } => {
                let text = self.redactor.redact(text);
                for line in text.split('\n') {
                    self.line(&format!("error ({build}): {line}"));
                }
            }
            Event::ErrorCount(_) | Event::ArtifactCount { .. } | Event::Artifact { .. } => {}
            Event::Other { .. } => {}
        }
    }

    pub fn raw(&mut self, text: &str) {
        self.line(text);
    }

    /// Handles one line of packer's stdout. It is redacted before it is unescaped:
    /// packer leaves backslashes alone, so a secret holding a literal `\n` would turn
    /// into two lines, neither of them the secret, once unescaped.
    pub fn packer_line(&mut self, text: &str) -> Option<Event> {
        let text = self.raw_redactor.redact(text);
        match machine::parse(&text) {
            Some(event) => {
                self.event(&event);
                Some(event)
            }
            None => {
                self.line(&text);
                None
            }
        }
    }

    pub fn end_group(&mut self) {
        if self.group_open {
            let _ = writeln!(self.out, "::endgroup::");
            self.group_open = false;
        }
    }
}

fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
    }
}

impl Packer {
    /// `packer build -machine-readable -color=false -only=B -var-file=F TEMPLATE`, to the end.
    pub fn build<W: Write>(
        &self,
        spec: &BuildSpec,
        printer: &mut Printer<'_, W>,
        stop: &dyn Fn() -> bool,
    ) -> Result<RunEnd, PackerError> {
        let (stdout_w, stdout_r) = output_file(&spec.cwd).map_err(|e| self.run_error(e))?;
        let (stderr_w, stderr_r) = output_file(&spec.cwd).map_err(|e| self.run_error(e))?;
        let mut cmd = self.command(spec.cloud);
        cmd.args(["build", "-machine-readable", "-color=false"])
            .arg(format!("-only={}", spec.only))
            .arg(format!("-var-file={}", spec.var_file.display()))
            .arg(&spec.template)
            .current_dir(&spec.cwd)
            // Packer's own temp files (inline scripts, which may hold interpolated values)
            // go into the private work directory and vanish with it, even when packer is
            // interrupted before it cleans up.
            .env("TMPDIR", &spec.cwd)
            .stdout(Stdio::from(stdout_w))
            .stderr(Stdio::from(stderr_w))
            // Its own group: a terminal's Ctrl-C does not reach packer behind our back, and
            // one kill(-pgid) reaches packer, its plugin child and everything they started.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| self.run_error(e))?;
        // The write ends went to packer with `cmd`, which is dropped now.
        drop(cmd);
        let done = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        follow(stdout_r, Arc::clone(&done), tx.clone(), Line::Out);
        follow(stderr_r, Arc::clone(&done), tx, Line::Err);
        let end = watch(&mut child, &rx, &done, spec, printer, stop);
        printer.end_group();
        end.map_err(|e| self.run_error(e))
    }
}

/// The loop that reads, prints, beats, and interrupts.
fn watch<W: Write>(
    child: &mut Child,
    rx: &Receiver<Line>,
    done: &AtomicBool,
    spec: &BuildSpec,
    printer: &mut Printer<'_, W>,
    stop: &dyn Fn() -> bool,
) -> std::io::Result<RunEnd> {
    let started = Instant::now();
    let mut last_output = Instant::now();
    let mut open_streams = 2;
    let mut artifact_ids: Vec<String> = Vec::new();
    let mut artifact_count = 0;
    let mut errors = Vec::new();
    let mut ui_errors = Vec::new();
    // Set once packer has been asked to stop: why, and when to stop waiting for it.
    let mut interrupted: Option<(RunEnd, Instant)> = None;
    let mut killed = false;
    let mut status = None;

    while open_streams > 0 {
        let tick = Duration::from_millis(200);
        match rx.recv_timeout(tick) {
            Ok(Line::Out(text)) => {
                last_output = Instant::now();
                if let Some(event) = printer.packer_line(&text) {
                    match event {
                        Event::ArtifactCount { build, count } if build == spec.only => {
                            artifact_count = count
                        }
                        Event::Artifact {
                            build,
                            index,
                            key,
                            value,
                        } if build == spec.only && key == "id" => {
                            let i = index as usize;
                            if artifact_ids.len() <= i {
                                artifact_ids.resize(i + 1, String::new());
                            }
                            artifact_ids[i] = value;
                        }
                        Event::BuildError { text, .. } => errors.push(text),
                        Event::Ui {
                            level: UiLevel::Error,
                            text,
                        } => ui_errors.push(text),
                        _ => {}
                    }
                }
            }
            Ok(Line::Err(text)) => {
                last_output = Instant::now();
                printer.raw(&text);
            }
            Ok(Line::Closed) => open_streams -= 1,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }

        if status.is_none() {
            status = child.try_wait()?;
            // The followers read to the end of the files, then close.
            done.store(status.is_some(), Ordering::SeqCst);
        }
        let now = Instant::now();
        match &interrupted {
            None => {
                let why = if stop() {
                    Some((RunEnd::Interrupted, spec.signal_grace, "interrupted"))
                } else if now >= spec.deadline {
                    Some((RunEnd::TimedOut, spec.deadline_grace, "deadline reached"))
                } else {
                    None
                };
                if let Some((end, grace, reason)) = why {
                    printer.end_group();
                    printer.raw(&format!(
                        "uworker-image: {reason} after {}: interrupting packer (it cleans up for up to {})",
                        format_elapsed(started.elapsed()),
                        format_elapsed(grace)
                    ));
                    signal_group(child, libc::SIGINT);
                    interrupted = Some((end, now + grace));
                }
            }
            Some((_, give_up)) if now >= *give_up && !killed => {
                printer.raw("uworker-image: packer did not stop in time: killing it");
                signal_group(child, libc::SIGKILL);
                killed = true;
            }
            Some(_) => {}
        }
        if interrupted.is_none() && last_output.elapsed() >= spec.heartbeat {
            printer.raw(&format!(
                "uworker-image: still running, {} elapsed; packer is at: {}",
                format_elapsed(started.elapsed()),
                printer.phase.clone()
            ));
            last_output = Instant::now();
        }
    }

    let status = match status {
        Some(status) => status,
        None => child.wait()?,
    };
    // The group may outlive its leader (a plugin, an ssh session): end it either way.
    signal_group(child, libc::SIGKILL);
    Ok(match interrupted {
        Some((end, _)) => end,
        None => RunEnd::Exited {
            code: status.code(),
            artifact_ids,
            artifact_count,
            errors: if errors.is_empty() { ui_errors } else { errors },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_redacts_groups_and_tracks_the_phase() {
        let redactor = Redactor::new(["s3cret, with comma"]);
        let mut out = Vec::new();
        let mut p = Printer::new(&mut out, &redactor, true);
        for line in [
            "1,,ui,say,==> test: Provisioning with shell script: a.sh",
            "1,,ui,message,    test: password is s3cret%!(PACKER_COMMA) with comma",
            "1,test,error,bad s3cret%!(PACKER_COMMA) with comma\\nsecond",
            "not machine readable",
        ] {
            p.packer_line(line);
        }
        let phase = p.phase.clone();
        p.end_group();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "::group::test: Provisioning with shell script: a.sh\n\
             ==> test: Provisioning with shell script: a.sh\n    test: password is ***\n\
             error (test): bad ***\nerror (test): second\nnot machine readable\n::endgroup::\n"
        );
        assert_eq!(phase, "test: Provisioning with shell script: a.sh");
    }

    #[test]
    fn elapsed_reads_well() {
        assert_eq!(format_elapsed(Duration::from_secs(5)), "5s");
        assert_eq!(format_elapsed(Duration::from_secs(125)), "2m05s");
        assert_eq!(
            format_elapsed(Duration::from_secs(3 * 3600 + 61)),
            "3h01m01s"
        );
    }
}
