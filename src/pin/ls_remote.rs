//! The edge of pinning a git source: `git ls-remote` asks the remote which commit the ref
//! names now.
//!
//! - git gets the URL without credentials on its command line; a URL's credentials reach
//!   it through a credential helper that reads them from git's environment
//!   (`GIT_CONFIG_COUNT`, git 2.31+), for that URL's scheme and host only, so they are in
//!   no process's arguments and never sent to another host a redirect names.
//! - Nothing of the user's git configuration counts (`GIT_CONFIG_GLOBAL=/dev/null`,
//!   `GIT_CONFIG_NOSYSTEM`, run from `/`, no repository's config): a helper or header
//!   there would send other credentials. Only http(s) (`GIT_ALLOW_PROTOCOL`); never a
//!   prompt (`GIT_TERMINAL_PROMPT=0`, no askpass).
//! - git and what it starts (`git-remote-https`, the helper) are one process group,
//!   killed whole when the timeout passes.
//! - What git prints on failure is masked (`secrets::Redactor`, every form of the
//!   userinfo) before it becomes an error's source.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::git::{GitSource, Pin};
use super::{GitSaid, PinError};

/// The environment variables the credential helper reads (the values go to git alone).
const USER_VAR: &str = "UWORKER_IMAGE_GIT_USERNAME";
const PASSWORD_VAR: &str = "UWORKER_IMAGE_GIT_PASSWORD";

/// The helper: answers `get` with the pair from the environment (printf is the shell's
/// own, so the values are on no command line), ignores `store` and `erase`.
const HELPER: &str = "!f() { test \"$1\" = get || exit 0; printf 'username=%s\\npassword=%s\\n' \"$UWORKER_IMAGE_GIT_USERNAME\" \"$UWORKER_IMAGE_GIT_PASSWORD\"; }; f";

/// The most of git's output that is read (a listing of a few refs is far less).
const OUTPUT_CAP: u64 = 1 << 20;

/// How git is run: the program (`git`, found on PATH) and how long it may take.
#[derive(Debug, Clone)]
pub struct Git {
    program: PathBuf,
    timeout: Duration,
}

impl Default for Git {
    fn default() -> Git {
        Git::new("git", Git::TIMEOUT)
    }
}

impl Git {
    /// How long `git ls-remote` may take by default: a listing of a few refs takes a
    /// second; this leaves room for a slow connection, not for a hung one.
    pub const TIMEOUT: Duration = Duration::from_secs(60);

    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Git {
        Git {
            program: program.into(),
            timeout,
        }
    }

    /// The commit `source`'s ref (or the remote's HEAD) names now, and the pinned value.
    pub fn resolve(&self, source: &GitSource) -> Result<Pin, PinError> {
        let wanted = source.wanted();
        let listing = self.ls_remote(source, &wanted.patterns())?;
        match wanted.commit_in(&listing) {
            Some(commit) => Ok(source.pinned(&commit)),
            None => Err(PinError::NoSuchRef {
                url: source.url(),
                host: source.host().to_string(),
                reference: source.reference().map(str::to_string),
            }),
        }
    }

    /// The command: `git ls-remote -- URL PATTERNS...`, its environment allow-listed,
    /// and the credentials (if any) for the helper.
    fn command(&self, source: &GitSource, patterns: &[String]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .envs(crate::child_env::of_process(false))
            .envs([
                ("GIT_TERMINAL_PROMPT", "0"),
                ("GIT_ASKPASS", ""),
                ("SSH_ASKPASS", ""),
                ("GIT_CONFIG_NOSYSTEM", "1"),
                ("GIT_CONFIG_GLOBAL", "/dev/null"),
                ("GIT_ALLOW_PROTOCOL", "http:https"),
                ("GIT_CONFIG_COUNT", "0"),
            ])
            .current_dir("/")
            .arg("ls-remote")
            // Everything after is the repository and patterns, never an option.
            .arg("--")
            .arg(source.url())
            .args(patterns)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(credential) = source.credential() {
            let (user, password) = credential.split_once(':').unwrap_or((credential, ""));
            let transport = source.url();
            let transport = transport.split_once("://").map_or("https", |(t, _)| t);
            command.envs([
                ("GIT_CONFIG_COUNT", "1".to_string()),
                (
                    "GIT_CONFIG_KEY_0",
                    format!("credential.{transport}://{}.helper", source.host()),
                ),
                ("GIT_CONFIG_VALUE_0", HELPER.to_string()),
                (USER_VAR, crate::userinfo::percent_decode(user)),
                (PASSWORD_VAR, crate::userinfo::percent_decode(password)),
            ]);
        }
        command
    }

    /// git's standard output, or why there is none.
    fn ls_remote(&self, source: &GitSource, patterns: &[String]) -> Result<String, PinError> {
        let url = source.url();
        let mut child = self.command(source, patterns).spawn().map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                PinError::GitMissing {
                    url: url.clone(),
                    program: self.program.clone(),
                    source: error,
                }
            } else {
                PinError::Run {
                    url: url.clone(),
                    source: error,
                }
            }
        })?;
        let stdout = read_on_thread(child.stdout.take());
        let stderr = read_on_thread(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(&mut child);
                    let _ = (stdout.join(), stderr.join());
                    return Err(PinError::TimedOut {
                        url,
                        host: source.host().to_string(),
                        seconds: self.timeout.as_secs().max(1),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => {
                    kill_group(&mut child);
                    return Err(PinError::Run { url, source: error });
                }
            }
        };
        // git waits for what it starts (its remote helper, the credential helper), so
        // the pipes are closed once it has exited.
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        if !status.success() {
            let secrets: Vec<String> = source
                .credential()
                .map(crate::userinfo::secret_forms)
                .unwrap_or_default();
            let redactor = crate::secrets::Redactor::new(secrets.iter().map(String::as_str));
            return Err(PinError::ListRefs {
                url,
                host: source.host().to_string(),
                source: GitSaid {
                    status: status.to_string(),
                    stderr: redactor.redact(&stderr).into_owned(),
                },
            });
        }
        Ok(stdout)
    }
}

/// Reads a pipe to its end (at most OUTPUT_CAP) on a thread of its own, so neither pipe
/// fills while the other is read.
fn read_on_thread(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(OUTPUT_CAP).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn signal_group(child: &Child, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid addresses the process group made for git
    // (`process_group(0)`); it is called only while git has not been reaped, so the
    // group's id is still git's.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn kill_group(child: &mut Child) {
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Chain;
    use crate::exit::{Code, Coded as _};
    use std::path::Path;

    const COMMIT: &str = "9e0d2b4c0123456789abcdef0123456789abcdef";
    const SECRET_URL: &str =
        "git+https://x-access-token:S3cr%40tToken@h.example/o/w.git@main#subdirectory=src";

    /// A `git` of the test's own in `dir`: records its arguments, environment and what
    /// the credential helper it was given answers, then runs `body`. Written by a shell,
    /// so no file descriptor of this process is open on it while another test forks
    /// (which would make exec fail with "text file busy").
    fn standin(dir: &Path, body: &str) -> PathBuf {
        let program = dir.join("git");
        let d = dir.display();
        let script = format!(
            "#!/bin/bash\n\
             printf '%s\\n' \"$@\" > {d}/argv\n\
             env > {d}/env\n\
             if [ -n \"$GIT_CONFIG_VALUE_0\" ]; then\n\
               sh -c \"${{GIT_CONFIG_VALUE_0#!}}\"' \"$@\"' helper get > {d}/helper </dev/null\n\
             fi\n\
             {body}\n"
        );
        let written = Command::new("sh")
            .arg("-c")
            .arg("cat > \"$1\" && chmod 0755 \"$1\"")
            .arg("sh")
            .arg(&program)
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait()
            })
            .unwrap();
        assert!(written.success());
        program
    }

    fn source(value: &str) -> GitSource {
        GitSource::parse(value).unwrap().unwrap()
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn the_credentials_reach_the_helper_through_the_environment_only() {
        let dir = tempfile::tempdir().unwrap();
        let listing = format!("printf '{COMMIT}\\trefs/heads/main\\n'");
        let git = Git::new(standin(dir.path(), &listing), Duration::from_secs(20));
        let pin = git.resolve(&source(SECRET_URL)).unwrap();
        assert_eq!(pin.commit, COMMIT);
        assert_eq!(pin.reference.as_deref(), Some("main"));
        assert_eq!(
            pin.value,
            format!("git+https://x-access-token:S3cr%40tToken@h.example/o/w.git@{COMMIT}#subdirectory=src")
        );
        let argv = read(dir.path(), "argv");
        assert_eq!(
            argv.lines().collect::<Vec<_>>(),
            [
                "ls-remote",
                "--",
                "https://h.example/o/w.git",
                "refs/heads/main",
                "refs/tags/main",
                "refs/tags/main^{}"
            ]
        );
        let env = read(dir.path(), "env");
        for line in [
            "GIT_TERMINAL_PROMPT=0",
            "GIT_CONFIG_NOSYSTEM=1",
            "GIT_CONFIG_GLOBAL=/dev/null",
            "GIT_ALLOW_PROTOCOL=http:https",
            "GIT_CONFIG_COUNT=1",
            "GIT_CONFIG_KEY_0=credential.https://h.example.helper",
        ] {
            assert!(env.lines().any(|l| l == line), "{line} not in:\n{env}");
        }
        // The helper answers git with the decoded pair; its own text holds neither.
        assert_eq!(
            read(dir.path(), "helper"),
            "username=x-access-token\npassword=S3cr@tToken\n"
        );
        assert!(!HELPER.contains("S3cr"));
        for secret in crate::userinfo::secret_forms("x-access-token:S3cr%40tToken")
            .iter()
            .filter(|s| s.contains("S3cr"))
        {
            assert!(!argv.contains(secret.as_str()), "{secret} in argv");
        }
    }

    #[test]
    fn without_credentials_no_helper_is_set_and_head_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let listing = format!("printf '{COMMIT}\\tHEAD\\n'");
        let git = Git::new(standin(dir.path(), &listing), Duration::from_secs(20));
        let pin = git
            .resolve(&source("git+http://127.0.0.1:9/w.git#subdirectory=src"))
            .unwrap();
        assert_eq!(
            pin.value,
            format!("git+http://127.0.0.1:9/w.git@{COMMIT}#subdirectory=src")
        );
        assert_eq!(pin.reference, None);
        let argv = read(dir.path(), "argv");
        assert_eq!(argv, "ls-remote\n--\nhttp://127.0.0.1:9/w.git\nHEAD\n");
        let env = read(dir.path(), "env");
        assert!(env.lines().any(|l| l == "GIT_CONFIG_COUNT=0"), "{env}");
        assert!(!env.contains("GIT_CONFIG_KEY_0"), "{env}");
        assert!(!env.contains(USER_VAR), "{env}");
    }

    #[test]
    fn a_failure_names_the_host_and_never_the_credentials() {
        let dir = tempfile::tempdir().unwrap();
        // A git that prints the credentials in every form they could take, then fails.
        let body = "echo \"fatal: unable to access 'https://x-access-token:S3cr%40tToken@h.example/o/w.git/': S3cr@tToken\" >&2; exit 128";
        let git = Git::new(standin(dir.path(), body), Duration::from_secs(20));
        let error = git.resolve(&source(SECRET_URL)).unwrap_err();
        assert!(matches!(error, PinError::ListRefs { .. }), "{error:?}");
        assert_eq!(error.code(), Code::External);
        let shown = Chain(&error).to_string();
        assert!(shown.contains("h.example"), "{shown}");
        assert!(shown.contains("exit status: 128"), "{shown}");
        assert!(!shown.contains("S3cr"), "{shown}");
        assert!(!format!("{error:?}").contains("S3cr"), "{error:?}");
    }

    #[test]
    fn a_ref_the_remote_does_not_list_is_external_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(standin(dir.path(), "exit 0"), Duration::from_secs(20));
        let error = git.resolve(&source(SECRET_URL)).unwrap_err();
        assert_eq!(error.code(), Code::External);
        let shown = error.to_string();
        assert!(shown.contains("no branch or tag `main`"), "{shown}");
        assert!(
            shown.contains("h.example") && !shown.contains("S3cr"),
            "{shown}"
        );
    }

    #[test]
    fn a_hung_remote_is_stopped_at_the_timeout_with_all_git_started() {
        let dir = tempfile::tempdir().unwrap();
        // The sleep holds git's output open: only stopping the whole group ends the read.
        let git = Git::new(
            standin(dir.path(), "sleep 60 & wait"),
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let error = git.resolve(&source(SECRET_URL)).unwrap_err();
        assert!(matches!(error, PinError::TimedOut { .. }), "{error:?}");
        assert_eq!(error.code(), Code::External);
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            error.to_string().contains("h.example did not answer"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_git_is_bad_input_naming_it() {
        let git = Git::new("/nonexistent/bin/git", Duration::from_secs(1));
        let error = git.resolve(&source(SECRET_URL)).unwrap_err();
        assert_eq!(error.code(), Code::BadInput);
        assert!(
            error.to_string().contains("/nonexistent/bin/git"),
            "{error}"
        );
        assert!(!Chain(&error).to_string().contains("S3cr"));
    }
}
