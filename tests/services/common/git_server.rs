//! A git server on loopback: one bare repository (`worker.git`, branch `main`, its HEAD)
//! served with git's smart HTTP, `git http-backend` run as a CGI program for each request
//! behind common::loopback's server (so protocol v2 and `ls-remote` work as against any
//! forge), optionally behind HTTP basic auth. The test moves the branch with `commit`
//! (a new commit pushed from a work tree of its own) and tags it with `tag`. It records
//! every request, and stops when dropped. Needs git only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tempfile::TempDir;

use super::loopback::{Answer, Request, Server};

pub const REPOSITORY: &str = "worker.git";
pub const BRANCH: &str = "main";

pub struct GitServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    dir: TempDir,
    requests: Arc<Mutex<Vec<Request>>>,
    _server: Server,
}

/// git with nothing of the machine's configuration, and a fixed author.
fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    command
}

fn run(mut command: Command) -> String {
    let output = command
        .output()
        .expect("git runs (git is part of the test setup)");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl GitServer {
    /// Serves a new repository with one commit on `main`; with `credentials`, every
    /// request needs them (basic auth) and one without is answered 401.
    pub fn start(credentials: Option<(&str, &str)>) -> GitServer {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("root").join(REPOSITORY);
        std::fs::create_dir_all(&bare).unwrap();
        let mut init = git(&bare);
        init.args(["init", "--quiet", "--bare", "--initial-branch", BRANCH]);
        run(init);
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut init = git(&work);
        init.args(["init", "--quiet", "--initial-branch", BRANCH]);
        run(init);
        let mut remote = git(&work);
        remote.args(["remote", "add", "origin"]).arg(&bare);
        run(remote);

        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let root = dir.path().join("root");
        let expected = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let server = Server::start("127.0.0.1", move |request| {
            log.lock().unwrap().push(request.clone());
            if expected.is_some() && request.basic_auth() != expected {
                return Answer::new(401, "authentication required\n")
                    .header("WWW-Authenticate", "Basic realm=\"git\"");
            }
            http_backend(&root, &request)
        });
        let served = GitServer {
            url: server.url.clone(),
            dir,
            requests,
            _server: server,
        };
        served.commit("first");
        served
    }

    /// The repository's URL: `http://127.0.0.1:PORT/worker.git`.
    pub fn repository_url(&self) -> String {
        format!("{}/{REPOSITORY}", self.url)
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// A new commit on `main`, pushed: the branch moves. Returns the commit.
    pub fn commit(&self, message: &str) -> String {
        std::fs::write(self.work().join("version.txt"), message).unwrap();
        self.commit_work_tree(message)
    }

    /// Everything in the work tree committed and pushed. Returns the commit.
    fn commit_work_tree(&self, message: &str) -> String {
        for args in [
            vec!["add", "--all", "."],
            vec!["commit", "--quiet", "-m", message],
            vec!["push", "--quiet", "origin", BRANCH],
        ] {
            let mut command = git(&self.work());
            command.args(args);
            run(command);
        }
        self.head()
    }

    /// A copy of directory `from` committed as `to` (a path in the repository), pushed: the
    /// branch moves. Returns the commit.
    pub fn commit_dir(&self, from: &Path, to: &str, message: &str) -> String {
        let work = self.work();
        let target = work.join(to);
        std::fs::create_dir_all(&target).unwrap();
        let mut copy = Command::new("cp");
        copy.arg("-R")
            .arg(format!("{}/.", from.display()))
            .arg(&target);
        run(copy);
        self.commit_work_tree(message)
    }

    /// A tag at the work tree's commit, pushed (annotated: a tag object of its own).
    pub fn tag(&self, name: &str, annotated: bool) {
        let work = self.work();
        let mut tag = git(&work);
        tag.arg("tag");
        if annotated {
            tag.args(["-a", "-m", name]);
        }
        tag.arg(name);
        run(tag);
        let mut push = git(&work);
        push.args(["push", "--quiet", "origin"])
            .arg(format!("refs/tags/{name}"));
        run(push);
    }

    /// The commit `main` is at.
    pub fn head(&self) -> String {
        let mut rev = git(&self.work());
        rev.args(["rev-parse", "HEAD"]);
        run(rev)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// One request through `git http-backend` (CGI): the request's method, path and query
/// in its environment, the body on its input; its output's headers (`Status:` among
/// them) and body make the answer.
fn http_backend(root: &Path, request: &Request) -> Answer {
    let (path, query) = request.path_and_query();
    let mut command = git(root);
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(kind) = request.header("content-type") {
        command.env("CONTENT_TYPE", kind);
    }
    if let Some(protocol) = request.header("git-protocol") {
        command.env("GIT_PROTOCOL", protocol);
    }
    if let Some((user, _)) = request.basic_auth() {
        command.env("REMOTE_USER", user);
    }
    let mut child = command.spawn().expect("git http-backend starts");
    let body = request.body.clone();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output().unwrap();
    let _ = writer.join();
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2)));
    let Some((at, gap)) = split else {
        return Answer::new(500, output.stderr);
    };
    let head = String::from_utf8_lossy(&out[..at]).into_owned();
    let mut answer = Answer::new(200, out[at + gap..].to_vec());
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            answer.status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(500);
        } else {
            answer = answer.header(name.trim(), value);
        }
    }
    answer
}
