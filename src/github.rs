//! GitHub's REST API (an edge), through octocrab on a tokio runtime made here: the rest
//! of the tool is synchronous. Only the operations the report needs, each one checked
//! against GitHub's OpenAPI description in the tests (tests/harness/github). Requests
//! go through `send`, which retries 5xx answers, transport errors and rate limits
//! (`Retry-After`, `x-ratelimit-reset`) with bounded waits. The token is never printed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use http::{Method, StatusCode};
use octocrab::service::middleware::retry::RetryConfig;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitHubError {
    #[error("GITHUB_REPOSITORY `{0}` is not OWNER/NAME")]
    Repository(String),
    #[error("GITHUB_API_URL `{0}` is not an http(s) URL")]
    ApiUrl(String),
    #[error("starting the GitHub client: {0}")]
    Client(String),
    #[error("{what}: GitHub answered HTTP {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: GitHub did not answer after {attempts} attempt(s): {message}")]
    Unreachable {
        what: String,
        attempts: u32,
        message: String,
    },
    #[error("{what}: rate limited by GitHub for {wait_s} s more, longer than the {max_s} s this run waits; rerun later")]
    RateLimited {
        what: String,
        wait_s: u64,
        max_s: u64,
    },
    #[error("{what}: unexpected answer: {message}")]
    Answer { what: String, message: String },
}

impl GitHubError {
    /// The token may not do this (a fork's read-only token, missing `permissions:`).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, GitHubError::Status { status: 403, .. })
    }
}

impl crate::exit::Coded for GitHubError {
    /// Bad configuration (2) rather than a failing service (3).
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            GitHubError::Repository(_) | GitHubError::ApiUrl(_) => Code::BadInput,
            GitHubError::Status {
                status: 401 | 403 | 404 | 422,
                ..
            } => Code::BadInput,
            GitHubError::Status { .. }
            | GitHubError::Client(_)
            | GitHubError::Unreachable { .. }
            | GitHubError::RateLimited { .. }
            | GitHubError::Answer { .. } => Code::External,
        }
    }
}

/// How often and how long to retry.
#[derive(Debug, Clone)]
pub struct Retry {
    pub attempts: u32,
    /// Backoff before the second attempt on 5xx; doubled before each later one.
    pub first_delay: Duration,
    /// The longest single wait; a rate limit that lasts longer fails at once.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    pub id: u64,
    pub tag_name: String,
    pub html_url: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Asset {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
    pub html_url: String,
    /// Null for a deleted account ("ghost").
    #[serde(default)]
    pub user: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

impl Comment {
    /// Written by `login` (logins are case-insensitive).
    pub fn written_by(&self, login: &str) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| u.login.eq_ignore_ascii_case(login))
    }
}

enum Payload {
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

struct Answer {
    status: StatusCode,
    body: String,
}

/// A client for one repository.
pub struct GitHub {
    runtime: tokio::runtime::Runtime,
    crab: Octocrab,
    api: String,
    uploads: String,
    repo: String,
    retry: Retry,
}

/// Where release assets are uploaded: uploads.github.com for github.com,
/// `https://HOST/api/uploads` for GitHub Enterprise Server, else the API itself.
pub fn upload_base(api: &str) -> String {
    if api == "https://api.github.com" {
        "https://uploads.github.com".into()
    } else if let Some(host) = api.strip_suffix("/api/v3") {
        format!("{host}/api/uploads")
    } else {
        api.to_string()
    }
}

impl GitHub {
    /// `api` is GITHUB_API_URL (GitHub Enterprise has its own), `repository` OWNER/NAME.
    pub fn new(
        api: &str,
        repository: &str,
        token: &str,
        retry: Retry,
    ) -> Result<GitHub, GitHubError> {
        let api = api.trim_end_matches('/').to_string();
        if !(api.starts_with("https://") || api.starts_with("http://")) {
            return Err(GitHubError::ApiUrl(api));
        }
        let valid_part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match repository.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) => {}
            _ => return Err(GitHubError::Repository(repository.to_string())),
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GitHubError::Client(e.to_string()))?;
        let uploads = upload_base(&api);
        // octocrab's buffer worker is spawned on the runtime of the caller.
        let _entered = runtime.enter();
        // URLs are built whole here; octocrab gets origins only, or it would prefix
        // GitHub Enterprise's /api/v3 to the upload URL.
        let (api_origin, upload_origin) = (origin(&api)?, origin(&uploads)?);
        let crab = Octocrab::builder()
            .base_uri(api_origin)
            .and_then(|b| b.upload_uri(upload_origin))
            .map_err(|_| GitHubError::ApiUrl(api.clone()))?
            .personal_token(token.to_string())
            // Retries are ours: with backoff and rate-limit headers, which octocrab ignores.
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|e| GitHubError::Client(e.to_string()))?;
        Ok(GitHub {
            runtime,
            crab,
            api,
            uploads,
            repo: repository.to_string(),
            retry,
        })
    }

    fn repo_url(&self, rest: &str) -> String {
        format!("{}/repos/{}{rest}", self.api, self.repo)
    }

    /// One request, retried as the policy allows. Answers below 400 are returned.
    fn send(
        &self,
        what: &str,
        method: Method,
        url: &str,
        payload: Option<Payload>,
        accept: &str,
    ) -> Result<Answer, GitHubError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = match self
                .runtime
                .block_on(self.once(&method, url, &payload, accept))
            {
                Ok((status, headers, body)) => {
                    if status.as_u16() < 400 {
                        return Ok(Answer { status, body });
                    }
                    let message = error_message(&body);
                    match retry_wait(status, &headers, &message, attempt, &self.retry) {
                        Some(wait) if attempt < self.retry.attempts => {
                            eprintln!(
                                "github: {what}: HTTP {}, attempt {attempt} of {}; retrying in {} s",
                                status.as_u16(),
                                self.retry.attempts,
                                wait.as_secs_f32()
                            );
                            wait
                        }
                        _ => {
                            return Err(GitHubError::Status {
                                what: what.into(),
                                status: status.as_u16(),
                                message,
                            })
                        }
                    }
                }
                Err(error) => {
                    if attempt >= self.retry.attempts {
                        return Err(GitHubError::Unreachable {
                            what: what.into(),
                            attempts: attempt,
                            message: error,
                        });
                    }
                    eprintln!("github: {what}: {error}; attempt {attempt}, retrying");
                    backoff(&self.retry, attempt)
                }
            };
            if wait > self.retry.max_wait {
                return Err(GitHubError::RateLimited {
                    what: what.into(),
                    wait_s: wait.as_secs(),
                    max_s: self.retry.max_wait.as_secs(),
                });
            }
            std::thread::sleep(wait);
        }
    }

    async fn once(
        &self,
        method: &Method,
        url: &str,
        payload: &Option<Payload>,
        accept: &str,
    ) -> Result<(StatusCode, HeaderMap, String), String> {
        let builder = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .header(ACCEPT, accept)
            .header("X-GitHub-Api-Version", "2022-11-28");
        let request = match payload {
            None => builder.body(octocrab::OctoBody::empty()),
            Some(Payload::Json(value)) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(octocrab::OctoBody::from(value.to_string())),
            Some(Payload::Bytes(bytes)) => builder
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(octocrab::OctoBody::from(bytes.clone())),
        }
        .map_err(|e| e.to_string())?;
        let response = self.crab.execute(request).await.map_err(describe)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.crab.body_to_string(response).await.map_err(describe)?;
        Ok((status, headers, body))
    }

    fn json<T: DeserializeOwned>(&self, what: &str, answer: &Answer) -> Result<T, GitHubError> {
        serde_json::from_str(&answer.body).map_err(|e| GitHubError::Answer {
            what: what.into(),
            message: format!("HTTP {}: {e}", answer.status.as_u16()),
        })
    }

    /// A request whose answer is JSON of type T.
    fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        url: &str,
        payload: Option<Payload>,
    ) -> Result<T, GitHubError> {
        let answer = self.send(what, method, url, payload, JSON)?;
        self.json(what, &answer)
    }

    fn get_json<T: DeserializeOwned>(&self, what: &str, url: &str) -> Result<T, GitHubError> {
        self.call(what, Method::GET, url, None)
    }

    /// The release with this tag; None when there is none.
    pub fn release_by_tag(&self, tag: &str) -> Result<Option<Release>, GitHubError> {
        let what = format!("reading release {tag}");
        match self.get_json(&what, &self.repo_url(&format!("/releases/tags/{tag}"))) {
            Ok(release) => Ok(Some(release)),
            Err(GitHubError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn create_release(
        &self,
        tag: &str,
        name: &str,
        body: &str,
        commit: Option<&str>,
    ) -> Result<Release, GitHubError> {
        let what = format!("creating release {tag}");
        let mut payload = json!({"tag_name": tag, "name": name, "body": body});
        if let Some(commit) = commit {
            payload["target_commitish"] = json!(commit);
        }
        self.call(
            &what,
            Method::POST,
            &self.repo_url("/releases"),
            Some(Payload::Json(payload)),
        )
    }

    pub fn update_release(
        &self,
        release: &Release,
        name: &str,
        body: &str,
    ) -> Result<Release, GitHubError> {
        let what = format!("updating release {}", release.tag_name);
        self.call(
            &what,
            Method::PATCH,
            &self.repo_url(&format!("/releases/{}", release.id)),
            Some(Payload::Json(json!({"name": name, "body": body}))),
        )
    }

    /// Uploads `bytes` as asset `name`, replacing an asset of that name.
    pub fn replace_asset(
        &self,
        release: &Release,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Asset, GitHubError> {
        for old in release.assets.iter().filter(|a| a.name == name) {
            self.send(
                &format!("deleting the old {name} of {}", release.tag_name),
                Method::DELETE,
                &self.repo_url(&format!("/releases/assets/{}", old.id)),
                None,
                JSON,
            )?;
        }
        let what = format!("uploading {name} to {}", release.tag_name);
        let url = format!(
            "{}/repos/{}/releases/{}/assets?name={name}",
            self.uploads, self.repo, release.id
        );
        self.call(&what, Method::POST, &url, Some(Payload::Bytes(bytes)))
    }

    /// The newest published release whose body starts with `marker` and that has an asset
    /// `asset`, other than `except_tag`; with the asset's content.
    pub fn latest_asset(
        &self,
        marker: &str,
        asset: &str,
        except_tag: &str,
    ) -> Result<Option<(Release, String)>, GitHubError> {
        // Newest first, as GitHub lists them; bounded at 1,000 releases.
        let found = self.find_paged("listing releases", "/releases", 10, |r: &Release| {
            !r.draft
                && r.tag_name != except_tag
                && r.body.as_deref().is_some_and(|b| b.starts_with(marker))
                && r.assets.iter().any(|a| a.name == asset)
        })?;
        let Some(release) = found else {
            return Ok(None);
        };
        let id = release
            .assets
            .iter()
            .find(|a| a.name == asset)
            .map(|a| a.id)
            .unwrap_or_default();
        // The API redirects to storage on another host. octocrab's follow-redirect layer
        // (tower-http's Standard policy) drops Authorization on a cross-origin hop, and its
        // auth layer adds the token only for the API's and uploads' origins: the token
        // stays with GitHub (tests/services/github.rs: the_token_never_follows_a_redirect_...).
        let answer = self.send(
            &format!("downloading {asset} of {}", release.tag_name),
            Method::GET,
            &self.repo_url(&format!("/releases/assets/{id}")),
            None,
            "application/octet-stream",
        )?;
        Ok(Some((release, answer.body)))
    }

    /// The login the token acts as (`GET /user`); None when GitHub refuses to say, as it
    /// does (401/403) for GITHUB_TOKEN and other installation tokens.
    pub fn authenticated_login(&self) -> Result<Option<String>, GitHubError> {
        let url = format!("{}/user", self.api);
        match self.get_json::<User>("asking whom the token acts as", &url) {
            Ok(user) => Ok(Some(user.login)),
            Err(GitHubError::Status {
                status: 401 | 403, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The first comment of the issue or pull request that `author` wrote and whose body
    /// starts with `marker`. Anyone can post the marker: only our own comment counts (a
    /// reply quoting it starts with `>`, and is left alone too).
    pub fn find_comment(
        &self,
        issue: u64,
        marker: &str,
        author: &str,
    ) -> Result<Option<Comment>, GitHubError> {
        // Bounded: a pull request with more than 3,000 comments gets a new one.
        self.find_paged(
            &format!("listing the comments of #{issue}"),
            &format!("/issues/{issue}/comments"),
            30,
            |c: &Comment| {
                c.written_by(author) && c.body.as_deref().is_some_and(|b| b.starts_with(marker))
            },
        )
    }

    /// The first item of a paginated list (`path` under the repository) that `wanted`
    /// accepts, reading at most `max_pages` pages of 100.
    fn find_paged<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        max_pages: usize,
        wanted: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, GitHubError> {
        const PER_PAGE: usize = 100;
        for page in 1..=max_pages {
            let items: Vec<T> = self.get_json(
                what,
                &self.repo_url(&format!("{path}?per_page={PER_PAGE}&page={page}")),
            )?;
            let last = items.len() < PER_PAGE;
            if let Some(found) = items.into_iter().find(|item| wanted(item)) {
                return Ok(Some(found));
            }
            if last {
                break;
            }
        }
        Ok(None)
    }

    pub fn create_comment(&self, issue: u64, body: &str) -> Result<Comment, GitHubError> {
        let what = format!("commenting on #{issue}");
        let url = self.repo_url(&format!("/issues/{issue}/comments"));
        self.call(
            &what,
            Method::POST,
            &url,
            Some(Payload::Json(json!({"body": body}))),
        )
    }

    /// Edits a comment in place (PATCH, as the API says; octocrab's update_comment POSTs).
    pub fn update_comment(&self, id: u64, body: &str) -> Result<Comment, GitHubError> {
        let what = format!("updating comment {id}");
        self.call(
            &what,
            Method::PATCH,
            &self.repo_url(&format!("/issues/comments/{id}")),
            Some(Payload::Json(json!({"body": body}))),
        )
    }
}

/// The media type GitHub's description gives its answers (Prism negotiates on it).
const JSON: &str = "application/json";

/// `scheme://authority` of a URL.
fn origin(url: &str) -> Result<String, GitHubError> {
    let uri: http::Uri = url.parse().map_err(|_| GitHubError::ApiUrl(url.into()))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(format!("{scheme}://{authority}")),
        _ => Err(GitHubError::ApiUrl(url.into())),
    }
}

/// A transport error's chain, without the request (which holds no token anyway: the
/// token is a header, and errors do not print headers).
fn describe(error: octocrab::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// GitHub's `message` from an error body, else the body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn backoff(retry: &Retry, attempt: u32) -> Duration {
    retry.first_delay * 2u32.saturating_pow(attempt.saturating_sub(1))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long to wait before retrying an answer, or None when it must not be retried:
/// secondary rate limits (`Retry-After`), primary ones (`x-ratelimit-remaining: 0`
/// until `x-ratelimit-reset`), and 5xx (backoff).
fn retry_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    attempt: u32,
    retry: &Retry,
) -> Option<Duration> {
    let limited = matches!(status.as_u16(), 403 | 429);
    if limited || status.is_server_error() {
        if let Some(seconds) = header_u64(headers, "retry-after") {
            return Some(Duration::from_secs(seconds));
        }
    }
    if limited && header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reset = header_u64(headers, "x-ratelimit-reset").unwrap_or(now + 60);
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    if status.as_u16() == 429 || (limited && message.to_ascii_lowercase().contains("rate limit")) {
        // A secondary limit without Retry-After: GitHub asks for at least a minute.
        return Some(Duration::from_secs(60).max(backoff(retry, attempt)));
    }
    status.is_server_error().then(|| backoff(retry, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn waits_follow_the_headers() {
        let retry = Retry::default();
        let none = HeaderMap::new();
        let s = |code| StatusCode::from_u16(code).unwrap();
        assert_eq!(
            retry_wait(s(502), &none, "", 1, &retry),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_wait(s(503), &none, "", 3, &retry),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            retry_wait(s(403), &headers(&[("retry-after", "7")]), "", 1, &retry),
            Some(Duration::from_secs(7))
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset = (now + 30).to_string();
        let wait = retry_wait(
            s(403),
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
            "API rate limit exceeded",
            1,
            &retry,
        )
        .unwrap();
        assert!((29..=32).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(
            retry_wait(
                s(403),
                &none,
                "You have exceeded a secondary rate limit",
                1,
                &retry
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_wait(
                s(403),
                &none,
                "Resource not accessible by integration",
                1,
                &retry
            ),
            None
        );
        assert_eq!(retry_wait(s(404), &none, "Not Found", 1, &retry), None);
        assert_eq!(
            retry_wait(s(422), &none, "Validation Failed", 1, &retry),
            None
        );
    }

    #[test]
    fn enterprise_uploads_and_bad_settings() {
        assert_eq!(
            upload_base("https://api.github.com"),
            "https://uploads.github.com"
        );
        assert_eq!(
            upload_base("https://ghe.example/api/v3"),
            "https://ghe.example/api/uploads"
        );
        assert_eq!(
            upload_base("http://127.0.0.1:4010"),
            "http://127.0.0.1:4010"
        );
        assert!(matches!(
            GitHub::new("https://api.github.com", "no-slash", "t", Retry::default()),
            Err(GitHubError::Repository(_))
        ));
        assert!(matches!(
            GitHub::new("api.github.com", "o/r", "t", Retry::default()),
            Err(GitHubError::ApiUrl(_))
        ));
        assert_eq!(
            error_message(r#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
    }
}
