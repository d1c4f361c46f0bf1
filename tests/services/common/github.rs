//! GitHub for the tests: Prism serving GitHub's official OpenAPI description (trimmed,
//! tests/harness/github) checks every request the tool sends. `Prism::mock` answers
//! with GitHub's examples; `Prism::proxy` sits in front of `FakeGitHub`, a small
//! stateful server on common::loopback, so both the requests and the fake's answers
//! are checked against the description.

use std::collections::VecDeque;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::loopback::{Answer, Request, Server};
use super::sshd::free_port;
use super::{run, tool, Run};

/// The job token of the tests: it must never appear in any output.
pub const TOKEN: &str = "ghs_s3cr3tT0kenNeverPrinted0123456789";

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/github")
}

/// Prism's entry point, installed once into the test cache by prism.sh.
fn prism_js() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(harness().join("prism.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("prism.sh runs");
        assert!(out.status.success(), "installing Prism failed");
        let dir = String::from_utf8(out.stdout).unwrap();
        Path::new(dir.trim()).join("node_modules/@stoplight/prism-cli/dist/index.js")
    })
}

/// A Prism process on a loopback port, stopped (its process group) on drop.
pub struct Prism {
    child: Child,
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prism {
    pub fn mock() -> Prism {
        Prism::start(&["mock"], None)
    }

    /// `prism proxy --errors`: requests and answers that break the description fail.
    pub fn proxy(upstream: &str) -> Prism {
        Prism::start(&["proxy", "--errors"], Some(upstream))
    }

    /// `prism proxy` that logs violations but passes answers on. For asset downloads:
    /// Prism follows the API's redirect to storage itself and then checks the file's
    /// bytes as if they were the API's JSON answer, which `--errors` turns into a 500.
    pub fn proxy_logging(upstream: &str) -> Prism {
        Prism::start(&["proxy"], Some(upstream))
    }

    fn start(mode: &[&str], upstream: Option<&str>) -> Prism {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("prism.log");
        let file = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let mut cmd = Command::new("node");
        cmd.arg(prism_js())
            .args(mode)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(harness().join("github-openapi.json"))
            .args(upstream)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        let child = cmd.spawn().expect("node runs Prism");
        let prism = Prism {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !prism.log().contains("Prism is listening") {
            assert!(
                Instant::now() < deadline,
                "Prism did not start:\n{}",
                prism.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prism
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines where Prism found a request (or, as a proxy, an answer) that breaks
    /// GitHub's description, or a route it does not have.
    pub fn violations(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("Violation:")
                    || l.contains("did not pass the validation rules")
                    || l.contains("Request terminated with error")
            })
            .map(str::to_string)
            .collect()
    }

    /// "METHOD path" of every request Prism received.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("Request received"))
            .filter_map(|l| {
                let rest = l.split("[HTTP SERVER] ").nth(1)?;
                let mut words = rest.split_whitespace();
                Some(format!(
                    "{} {}",
                    words.next()?.to_uppercase(),
                    words.next()?
                ))
            })
            .collect()
    }

    /// Panics with the offending lines when Prism saw a violation.
    pub fn assert_conformant(&self) {
        self.assert_no_violations(self.violations());
    }

    /// As `assert_conformant`, except for the storage's answer to an asset download,
    /// which Prism fetches itself (see `proxy_logging`). Requests are all checked.
    pub fn assert_conformant_but_storage(&self) {
        let mut request = String::new();
        let mut violations = Vec::new();
        for line in self.log().lines() {
            if line.contains("Request received") {
                request = line.to_string();
            } else if line.contains("Violation:") {
                let download = request.contains("[HTTP SERVER] get /repos/o/r/releases/assets/");
                if !(download && line.contains("Violation: response")) {
                    violations.push(line.to_string());
                }
            }
        }
        self.assert_no_violations(violations);
    }

    fn assert_no_violations(&self, violations: Vec<String>) {
        assert!(
            violations.is_empty(),
            "requests or answers break GitHub's OpenAPI description:\n{}\n--- log ---\n{}",
            violations.join("\n"),
            self.log()
        );
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FakeAsset {
    pub id: u64,
    pub name: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct FakeRelease {
    pub id: u64,
    pub tag: String,
    pub name: String,
    pub body: String,
    pub assets: Vec<FakeAsset>,
}

#[derive(Debug, Clone)]
pub struct FakeComment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    /// The login of whoever wrote it.
    pub author: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub releases: Vec<FakeRelease>,
    pub comments: Vec<FakeComment>,
    next_id: u64,
    /// Answers (status, headers) for the next requests, whatever they ask (e.g. 502).
    pub failures: VecDeque<(u16, Vec<(String, String)>)>,
    /// Writes answer 403, as with a fork's read-only token.
    pub read_only: bool,
    /// The login the token acts as, as `GET /user` tells it (a personal token); None
    /// answers 403 there, as GitHub does for GITHUB_TOKEN, whose comments are then by
    /// `github-actions[bot]`.
    pub token_user: Option<String>,
    /// Where asset downloads redirect to (`http://HOST:PORT`); None: this fake itself,
    /// under `localhost`.
    pub storage: Option<String>,
    pub seen: Vec<Seen>,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn add_release(&mut self, tag: &str, body: &str, assets: &[(&str, &str)]) -> u64 {
        let id = self.id();
        let assets = assets
            .iter()
            .map(|(name, content)| FakeAsset {
                id: self.id(),
                name: name.to_string(),
                content: content.as_bytes().to_vec(),
            })
            .collect();
        self.releases.push(FakeRelease {
            id,
            tag: tag.into(),
            name: tag.into(),
            body: body.into(),
            assets,
        });
        id
    }

    /// The next request gets this status and these headers.
    pub fn fail(&mut self, status: u16, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.failures.push_back((status, headers));
    }

    /// A comment written by the token's own identity.
    pub fn add_comment(&mut self, issue: u64, body: &str) -> u64 {
        let author = self.token_login();
        self.add_comment_by(issue, body, &author)
    }

    pub fn add_comment_by(&mut self, issue: u64, body: &str, author: &str) -> u64 {
        let id = self.id();
        self.comments.push(FakeComment {
            id,
            issue,
            body: body.into(),
            author: author.into(),
        });
        id
    }

    fn token_login(&self) -> String {
        self.token_user
            .clone()
            .unwrap_or_else(|| "github-actions[bot]".into())
    }
}

/// The stateful fake GitHub (repository o/r); runs until the test ends.
#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl FakeGitHub {
    pub fn start() -> FakeGitHub {
        let state = Arc::new(Mutex::new(State {
            next_id: 100,
            ..State::default()
        }));
        let mut fake = None;
        Server::start_knowing_url("127.0.0.1", |url| {
            let server = FakeGitHub {
                url: url.to_string(),
                state: state.clone(),
            };
            fake = Some(server.clone());
            move |request| server.serve(request)
        })
        .detach();
        fake.unwrap()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn serve(&self, request: Request) -> Answer {
        let (path, query) = request.path_and_query();
        let (status, headers, payload) = {
            let mut state = self.state.lock().unwrap();
            state.seen.push(Seen {
                method: request.method.clone(),
                path: request.target.clone(),
                authorization: request.header("authorization").map(str::to_string),
            });
            self.answer(&mut state, &request.method, path, query, &request.body)
        };
        Answer {
            status,
            headers,
            body: payload,
        }
    }

    fn answer(
        &self,
        state: &mut State,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let json_headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        let reply = |status: u16, value: Value| {
            (status, json_headers.clone(), value.to_string().into_bytes())
        };
        if let Some((status, headers)) = state.failures.pop_front() {
            let message = if status == 502 {
                "Server Error"
            } else {
                "API rate limit exceeded"
            };
            let (status, mut all, body) = reply(status, json!({"message": message}));
            all.extend(headers);
            return (status, all, body);
        }
        if let Some(id) = path.strip_prefix("/download/") {
            // Storage on another host: what the API redirects asset downloads to.
            let id: u64 = id.parse().unwrap();
            let content = state
                .releases
                .iter()
                .flat_map(|r| &r.assets)
                .find(|a| a.id == id)
                .map(|a| a.content.clone());
            return match content {
                Some(c) => (
                    200,
                    vec![("Content-Type".into(), "application/octet-stream".into())],
                    c,
                ),
                None => reply(404, not_found()),
            };
        }
        if method == "GET" && path == "/user" {
            return match &state.token_user {
                Some(login) => {
                    let mut user = user_named(login, "User");
                    for (key, value) in [
                        ("name", Value::Null),
                        ("company", Value::Null),
                        ("blog", Value::Null),
                        ("location", Value::Null),
                        ("email", Value::Null),
                        ("hireable", Value::Null),
                        ("bio", Value::Null),
                        ("public_repos", json!(0)),
                        ("public_gists", json!(0)),
                        ("followers", json!(0)),
                        ("following", json!(0)),
                        ("created_at", json!("2026-01-01T00:00:00Z")),
                        ("updated_at", json!("2026-01-01T00:00:00Z")),
                        ("user_view_type", json!("public")),
                    ] {
                        user[key] = value;
                    }
                    reply(200, user)
                }
                None => reply(
                    403,
                    json!({"message": "Resource not accessible by integration",
                           "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user"}),
                ),
            };
        }
        let Some(rest) = path.strip_prefix("/repos/o/r/") else {
            return reply(404, not_found());
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let writes = method != "GET";
        if writes && state.read_only {
            return reply(
                403,
                json!({"message": "Resource not accessible by integration",
                       "documentation_url": "https://docs.github.com/rest"}),
            );
        }
        match (method, parts.as_slice()) {
            ("GET", ["releases"]) => {
                let list: Vec<Value> = state
                    .releases
                    .iter()
                    .rev()
                    .map(|r| self.release(r))
                    .collect();
                reply(200, Value::Array(page_of(list, query)))
            }
            ("GET", ["releases", "tags", tag]) => {
                match state.releases.iter().find(|r| r.tag == *tag) {
                    Some(r) => reply(200, self.release(r)),
                    None => reply(404, not_found()),
                }
            }
            ("POST", ["releases"]) => {
                let tag = input["tag_name"].as_str().unwrap().to_string();
                if state.releases.iter().any(|r| r.tag == tag) {
                    return reply(
                        422,
                        json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                               "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}]}),
                    );
                }
                let id = state.add_release(&tag, input["body"].as_str().unwrap_or(""), &[]);
                let release = state.releases.iter_mut().find(|r| r.id == id).unwrap();
                release.name = input["name"].as_str().unwrap_or("").into();
                reply(201, self.release(release))
            }
            ("PATCH", ["releases", id]) => {
                let id: u64 = id.parse().unwrap();
                match state.releases.iter_mut().find(|r| r.id == id) {
                    Some(release) => {
                        if let Some(body) = input["body"].as_str() {
                            release.body = body.into();
                        }
                        if let Some(name) = input["name"].as_str() {
                            release.name = name.into();
                        }
                        reply(200, self.release(release))
                    }
                    None => reply(404, not_found()),
                }
            }
            ("GET", ["releases", "assets", id]) => {
                let id: u64 = id.parse().unwrap();
                (
                    302,
                    // Another origin (`localhost`, not the API's 127.0.0.1), as storage is.
                    vec![(
                        "Location".into(),
                        format!(
                            "{}/download/{id}",
                            state
                                .storage
                                .clone()
                                .unwrap_or_else(|| self.url.replace("127.0.0.1", "localhost"))
                        ),
                    )],
                    Vec::new(),
                )
            }
            ("DELETE", ["releases", "assets", id]) => {
                let id: u64 = id.parse().unwrap();
                for release in &mut state.releases {
                    release.assets.retain(|a| a.id != id);
                }
                (204, Vec::new(), Vec::new())
            }
            ("POST", ["releases", id, "assets"]) => {
                let release_id: u64 = id.parse().unwrap();
                let name = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("name="))
                    .unwrap_or("")
                    .to_string();
                let asset = FakeAsset {
                    id: state.id(),
                    name,
                    content: body.to_vec(),
                };
                let release = state
                    .releases
                    .iter_mut()
                    .find(|r| r.id == release_id)
                    .unwrap();
                release.assets.push(asset.clone());
                reply(201, self.asset(&asset))
            }
            ("GET", ["issues", issue, "comments"]) => {
                let issue: u64 = issue.parse().unwrap();
                let list: Vec<Value> = state
                    .comments
                    .iter()
                    .filter(|c| c.issue == issue)
                    .map(|c| self.comment(c))
                    .collect();
                reply(200, Value::Array(page_of(list, query)))
            }
            ("POST", ["issues", issue, "comments"]) => {
                let issue: u64 = issue.parse().unwrap();
                let id = state.add_comment(issue, input["body"].as_str().unwrap());
                let comment = state.comments.iter().find(|c| c.id == id).unwrap();
                reply(201, self.comment(comment))
            }
            ("PATCH", ["issues", "comments", id]) => {
                let id: u64 = id.parse().unwrap();
                match state.comments.iter_mut().find(|c| c.id == id) {
                    Some(comment) => {
                        comment.body = input["body"].as_str().unwrap().into();
                        reply(200, self.comment(comment))
                    }
                    None => reply(404, not_found()),
                }
            }
            _ => reply(404, not_found()),
        }
    }

    fn release(&self, r: &FakeRelease) -> Value {
        let base = "https://api.github.com/repos/o/r";
        json!({
            "url": format!("{base}/releases/{}", r.id),
            "html_url": format!("https://github.com/o/r/releases/tag/{}", r.tag),
            "assets_url": format!("{base}/releases/{}/assets", r.id),
            "upload_url": format!("https://uploads.github.com/repos/o/r/releases/{}/assets{{?name,label}}", r.id),
            "tarball_url": null,
            "zipball_url": null,
            "id": r.id,
            "node_id": "RE_1",
            "tag_name": r.tag,
            "target_commitish": "main",
            "name": r.name,
            "body": r.body,
            "draft": false,
            "prerelease": false,
            "created_at": "2026-01-01T00:00:00Z",
            "published_at": "2026-01-01T00:00:00Z",
            "author": user(),
            "assets": r.assets.iter().map(|a| self.asset(a)).collect::<Vec<_>>(),
        })
    }

    fn asset(&self, a: &FakeAsset) -> Value {
        json!({
            "url": format!("https://api.github.com/repos/o/r/releases/assets/{}", a.id),
            "browser_download_url": format!("https://github.com/o/r/releases/download/x/{}", a.name),
            "id": a.id,
            "node_id": "RA_1",
            "name": a.name,
            "label": null,
            "state": "uploaded",
            "content_type": "application/octet-stream",
            "size": a.content.len(),
            "digest": null,
            "download_count": 0,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "uploader": user(),
        })
    }

    fn comment(&self, c: &FakeComment) -> Value {
        json!({
            "id": c.id,
            "node_id": "IC_1",
            "url": format!("https://api.github.com/repos/o/r/issues/comments/{}", c.id),
            "html_url": format!("https://github.com/o/r/pull/{}#issuecomment-{}", c.issue, c.id),
            "issue_url": format!("https://api.github.com/repos/o/r/issues/{}", c.issue),
            "body": c.body,
            "user": user_named(&c.author, if c.author.ends_with("[bot]") { "Bot" } else { "User" }),
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "author_association": "OWNER",
        })
    }
}

fn not_found() -> Value {
    json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

fn user() -> Value {
    user_named("github-actions[bot]", "Bot")
}

fn user_named(login: &str, kind: &str) -> Value {
    let name = login.trim_end_matches("[bot]");
    let u = format!("https://api.github.com/users/{name}");
    let u = u.as_str();
    json!({
        "login": login, "id": 41898282, "node_id": "MDM6Qm90NDE4OTgyODI=",
        "avatar_url": "https://avatars.githubusercontent.com/in/15368", "gravatar_id": "",
        "url": u, "html_url": "https://github.com/apps/github-actions",
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": kind, "site_admin": false
    })
}

/// A GitHub Actions job step: event payload, output and summary files, the token.
pub struct Job {
    pub dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Job {
    pub fn new(api: &str, event: &str, payload: Value, git_ref: &str) -> Job {
        let dir = tempfile::tempdir().unwrap();
        let event_path = dir.path().join("event.json");
        std::fs::write(&event_path, payload.to_string()).unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let vars = [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_EVENT_NAME", event.to_string()),
            ("GITHUB_EVENT_PATH", event_path.display().to_string()),
            ("GITHUB_REF", git_ref.to_string()),
            ("GITHUB_REPOSITORY", "o/r".to_string()),
            ("GITHUB_API_URL", api.to_string()),
            ("GITHUB_SERVER_URL", "https://github.com".to_string()),
            ("GITHUB_RUN_ID", "77".to_string()),
            (
                "GITHUB_SHA",
                "2222222222222222222222222222222222222222".to_string(),
            ),
            ("GITHUB_TOKEN", TOKEN.to_string()),
            ("GITHUB_OUTPUT", path("output")),
            ("GITHUB_STEP_SUMMARY", path("summary.md")),
            ("UWORKER_IMAGE_GITHUB_RETRY_DELAY", "50ms".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Job { dir, vars }
    }

    pub fn push(api: &str) -> Job {
        let payload = json!({"repository": {"default_branch": "main", "full_name": "o/r"}});
        Job::new(api, "push", payload, "refs/heads/main")
    }

    pub fn pull_request(api: &str, number: u64, fork: bool) -> Job {
        let head_repo = if fork { "someone/r" } else { "o/r" };
        let payload = json!({
            "number": number,
            "pull_request": {"number": number, "head": {"sha": "3333", "repo": {"full_name": head_repo}}},
            "repository": {"full_name": "o/r", "default_branch": "main"}
        });
        Job::new(api, "pull_request", payload, "refs/pull/7/merge")
    }

    pub fn with(mut self, key: &str, value: &str) -> Job {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.into()));
        self
    }

    pub fn without(mut self, key: &str) -> Job {
        self.vars.retain(|(k, _)| k != key);
        self
    }

    pub fn command(&self) -> std::process::Command {
        let pairs: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        tool(&pairs)
    }

    /// `report --record FILE` with the record written into the job's dir.
    pub fn report(&self, record: &Value, extra: &[&str]) -> Run {
        let file = self.dir.path().join("record.json");
        std::fs::write(&file, serde_json::to_string_pretty(record).unwrap()).unwrap();
        let mut cmd = self.command();
        cmd.arg("report").arg("--record").arg(&file).args(extra);
        let r = run(cmd);
        self.assert_no_token(&r);
        r
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn outputs(&self) -> String {
        self.file("output")
    }

    pub fn summary(&self) -> String {
        self.file("summary.md")
    }

    pub fn assert_no_token(&self, r: &Run) {
        for (what, text) in [
            ("output", r.all()),
            ("GITHUB_OUTPUT", self.outputs()),
            ("summary", self.summary()),
        ] {
            assert!(!text.contains(TOKEN), "the token leaked into the {what}");
        }
    }
}

/// One page of a list, as GitHub pages: `per_page` (default 30) and `page` (from 1).
fn page_of(list: Vec<Value>, query: &str) -> Vec<Value> {
    let param = |name: &str, default: usize| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(default)
    };
    let per_page = param("per_page", 30);
    let page = param("page", 1).max(1);
    list.into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect()
}
