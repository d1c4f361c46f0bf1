//! GitHub's REST API (an edge), through octocrab's typed API on a tokio runtime made
//! here: the rest of the tool is synchronous. Only the operations the report needs, each
//! one checked against GitHub's OpenAPI description in the tests (tests/harness/github).
//! octocrab builds the requests and reads the answers; they go out through `transport`
//! (the tool's HTTP client and its one retry policy). The token is never printed.

mod transport;

use std::time::Duration;

use futures_util::StreamExt;
use http::header::CONTENT_TYPE;
use octocrab::models::{issues, repos};
use octocrab::{AuthState, Octocrab, OctocrabBuilder};
use secrecy::SecretString;
use thiserror::Error;

use crate::http::retry::{Retry, MAX_WAIT};
use crate::http::Redirects;
use transport::{Transport, TransportError};

#[derive(Debug, Error)]
pub enum GitHubError {
    #[error("GITHUB_REPOSITORY `{0}` is not OWNER/NAME")]
    Repository(String),
    #[error("GITHUB_API_URL `{0}` is not an http(s) URL")]
    ApiUrl(String),
    #[error("starting the GitHub client")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{what}: GitHub answered HTTP {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}")]
    Transport {
        what: String,
        #[source]
        error: TransportError,
    },
    #[error("{what}: rate limited by GitHub for {wait_s} s more, longer than the {max_s} s this run waits; rerun later")]
    RateLimited {
        what: String,
        wait_s: u64,
        max_s: u64,
    },
    /// octocrab's errors print their cause inside their own text (some a backtrace too),
    /// so only the text of the innermost one is kept.
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
            | GitHubError::Transport { .. }
            | GitHubError::RateLimited { .. }
            | GitHubError::Answer { .. } => Code::External,
        }
    }
}

/// GitHub's tries: five, 1 s to 8 s apart (rate limits wait as GitHub says).
pub fn default_retry() -> Retry {
    Retry {
        attempts: 5,
        first_delay: Duration::from_secs(1),
    }
}

/// What the report uses of a release.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: u64,
    pub tag_name: String,
    pub html_url: String,
    pub body: Option<String>,
    pub draft: bool,
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone)]
pub struct Asset {
    pub id: u64,
    pub name: String,
}

/// What the report uses of a comment.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub body: Option<String>,
    pub html_url: String,
    pub author: String,
}

impl Comment {
    /// Written by `login` (logins are case-insensitive).
    pub fn written_by(&self, login: &str) -> bool {
        self.author.eq_ignore_ascii_case(login)
    }
}

impl From<repos::Release> for Release {
    fn from(release: repos::Release) -> Release {
        Release {
            id: release.id.into_inner(),
            tag_name: release.tag_name,
            html_url: release.html_url.to_string(),
            body: release.body,
            draft: release.draft,
            assets: release.assets.into_iter().map(Asset::from).collect(),
        }
    }
}

impl From<repos::Asset> for Asset {
    fn from(asset: repos::Asset) -> Asset {
        Asset {
            id: asset.id.into_inner(),
            name: asset.name,
        }
    }
}

impl From<issues::Comment> for Comment {
    fn from(comment: issues::Comment) -> Comment {
        Comment {
            id: comment.id.into_inner(),
            body: comment.body,
            html_url: comment.html_url.to_string(),
            author: comment.user.login,
        }
    }
}

/// A comment as a listing gives it: its author is null when the account was deleted.
#[derive(Debug, serde::Deserialize)]
struct ListedComment {
    id: u64,
    body: Option<String>,
    html_url: String,
    user: Option<ListedUser>,
}

#[derive(Debug, serde::Deserialize)]
struct ListedUser {
    login: String,
}

impl From<ListedComment> for Comment {
    fn from(comment: ListedComment) -> Comment {
        Comment {
            id: comment.id,
            body: comment.body,
            html_url: comment.html_url,
            author: comment.user.map(|u| u.login).unwrap_or_default(),
        }
    }
}

/// A client for one repository.
pub struct GitHub {
    runtime: tokio::runtime::Runtime,
    crab: Octocrab,
    uploads: String,
    owner: String,
    name: String,
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
        let (owner, name) = match repository.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) => (owner, name),
            _ => return Err(GitHubError::Repository(repository.to_string())),
        };
        let uploads = upload_base(&api);
        let origins = [origin(&api)?, origin(&uploads)?];
        // Made before the runtime is entered: the blocking client refuses to start in one.
        let client = crate::http::client(
            Redirects::AnyHostWithoutAuthorization,
            Duration::from_secs(60),
        )
        .map_err(|e| GitHubError::Client(e.into()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GitHubError::Client(e.into()))?;
        // octocrab's buffer worker is spawned on the runtime of the caller.
        let _entered = runtime.enter();
        let transport = Transport {
            client,
            retry,
            api,
            origins,
            token: SecretString::from(token.to_string()),
        };
        // The transport adds the token itself, only for the API's and uploads' origins.
        let crab = OctocrabBuilder::new_empty()
            .with_service(transport)
            .with_auth(AuthState::None)
            .build()
            .map_err(|e| GitHubError::Client(e.into()))?;
        Ok(GitHub {
            runtime,
            crab,
            uploads,
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// Runs one octocrab call to its end; its failure becomes ours, named by `what`.
    fn run<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = octocrab::Result<T>>,
    ) -> Result<T, GitHubError> {
        self.runtime
            .block_on(call)
            .map_err(|error| failure(what, error))
    }

    fn repos(&self) -> octocrab::repos::RepoHandler<'_> {
        self.crab.repos(&self.owner, &self.name)
    }

    fn issues(&self) -> octocrab::issues::IssueHandler<'_> {
        self.crab.issues(&self.owner, &self.name)
    }

    /// The release with this tag; None when there is none.
    pub fn release_by_tag(&self, tag: &str) -> Result<Option<Release>, GitHubError> {
        let what = format!("reading release {tag}");
        match self.run(&what, self.repos().releases().get_by_tag(tag)) {
            Ok(release) => Ok(Some(release.into())),
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
        let releases = self.repos();
        let releases = releases.releases();
        let mut create = releases.create(tag).name(name).body(body);
        if let Some(commit) = commit {
            create = create.target_commitish(commit);
        }
        self.run(&what, create.send()).map(Release::from)
    }

    pub fn update_release(
        &self,
        release: &Release,
        name: &str,
        body: &str,
    ) -> Result<Release, GitHubError> {
        let what = format!("updating release {}", release.tag_name);
        let releases = self.repos();
        let releases = releases.releases();
        let update = releases.update(release.id).name(name).body(body);
        self.run(&what, update.send()).map(Release::from)
    }

    /// Uploads `bytes` as asset `name`, replacing an asset of that name.
    pub fn replace_asset(
        &self,
        release: &Release,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Asset, GitHubError> {
        for old in release.assets.iter().filter(|a| a.name == name) {
            self.run(
                &format!("deleting the old {name} of {}", release.tag_name),
                self.repos().release_assets().delete(old.id),
            )?;
        }
        let what = format!("uploading {name} to {}", release.tag_name);
        // Not octocrab's `upload_asset`: it reads the release again and posts to the
        // answer's `upload_url`, where the URL made here from GITHUB_API_URL keeps the
        // upload at the API's own uploads origin (GitHub Enterprise's /api/uploads), and
        // at the Prism mock, whose example release names uploads.github.com.
        let url = format!(
            "{}/repos/{}/{}/releases/{}/assets?name={name}",
            self.uploads, self.owner, self.name, release.id
        );
        let request = http::Request::post(url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(octocrab::OctoBody::from(bytes))
            .map_err(|e| GitHubError::Client(e.into()))?;
        let upload = async {
            let response = self.crab.execute(request).await?;
            let response = octocrab::map_github_error(response).await?;
            self.crab.body_to_string(response).await
        };
        let text = self.run(&what, upload)?;
        serde_json::from_str::<repos::Asset>(&text)
            .map(Asset::from)
            .map_err(|e| GitHubError::Answer {
                what,
                message: e.to_string(),
            })
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
        let found = self.find_paged(
            "listing releases",
            10,
            |page| {
                let repos = self.repos();
                async move {
                    let releases = repos.releases();
                    let list = releases.list().per_page(PER_PAGE).page(page);
                    Ok(list.send().await?.items)
                }
            },
            |r: &repos::Release| {
                !r.draft
                    && r.tag_name != except_tag
                    && r.body.as_deref().is_some_and(|b| b.starts_with(marker))
                    && r.assets.iter().any(|a| a.name == asset)
            },
        )?;
        let Some(release) = found.map(Release::from) else {
            return Ok(None);
        };
        let content = self.asset_text(&release, asset)?.unwrap_or_default();
        Ok(Some((release, content)))
    }

    /// The content of the release's asset `name`; None when it has none of that name.
    pub fn asset_text(&self, release: &Release, name: &str) -> Result<Option<String>, GitHubError> {
        let Some(id) = release.assets.iter().find(|a| a.name == name).map(|a| a.id) else {
            return Ok(None);
        };
        // The API redirects to storage on another host: the client follows, without
        // the token (http::Redirects::AnyHostWithoutAuthorization), and the transport
        // adds it only for GitHub's own origins (tests/services/github.rs:
        // the_token_never_follows_a_redirect_...).
        let download = async {
            let assets = self.repos();
            let assets = assets.release_assets();
            let mut stream = std::pin::pin!(assets.stream(id).await?);
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk?);
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        let what = format!("downloading {name} of {}", release.tag_name);
        self.run(&what, download).map(Some)
    }

    /// The login the token acts as (`GET /user`); None when GitHub refuses to say, as it
    /// does (401/403) for GITHUB_TOKEN and other installation tokens.
    pub fn authenticated_login(&self) -> Result<Option<String>, GitHubError> {
        match self.run("asking whom the token acts as", self.crab.current().user()) {
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
        let found = self.find_paged(
            &format!("listing the comments of #{issue}"),
            30,
            |page| {
                // Not octocrab's `list_comments`: its `Comment.user` is required, and
                // GitHub answers `"user": null` for a comment of a deleted account.
                let route = format!(
                    "/repos/{}/{}/issues/{issue}/comments",
                    self.owner, self.name
                );
                async move {
                    let params = [("per_page", u32::from(PER_PAGE)), ("page", page)];
                    self.crab
                        .get::<Vec<ListedComment>, _, _>(route, Some(&params))
                        .await
                }
            },
            |c: &ListedComment| {
                c.user
                    .as_ref()
                    .is_some_and(|u| u.login.eq_ignore_ascii_case(author))
                    && c.body.as_deref().is_some_and(|b| b.starts_with(marker))
            },
        )?;
        Ok(found.map(Comment::from))
    }

    /// The first item of a paginated list that `wanted` accepts, reading at most
    /// `max_pages` pages of `PER_PAGE` with `page`.
    fn find_paged<T, F>(
        &self,
        what: &str,
        max_pages: u32,
        page: impl Fn(u32) -> F,
        wanted: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, GitHubError>
    where
        F: std::future::Future<Output = octocrab::Result<Vec<T>>>,
    {
        for number in 1..=max_pages {
            let items = self.run(what, page(number))?;
            let last = items.len() < usize::from(PER_PAGE);
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
        self.run(&what, self.issues().create_comment(issue, body))
            .map(Comment::from)
    }

    /// Edits a comment in place. Made by hand (as is `replace_asset`'s upload): GitHub
    /// documents PATCH, and octocrab 0.54.9's `IssueHandler::update_comment` sends POST.
    pub fn update_comment(&self, id: u64, body: &str) -> Result<Comment, GitHubError> {
        let what = format!("updating comment {id}");
        let route = format!("/repos/{}/{}/issues/comments/{id}", self.owner, self.name);
        let body = serde_json::json!({ "body": body });
        self.run(
            &what,
            self.crab.patch::<issues::Comment, _, _>(route, Some(&body)),
        )
        .map(Comment::from)
    }
}

/// Items per page of a listing (GitHub's most).
const PER_PAGE: u8 = 100;

/// `scheme://authority` of a URL, as `url::Origin` serializes it.
fn origin(url: &str) -> Result<String, GitHubError> {
    reqwest::Url::parse(url)
        .ok()
        .filter(|u| u.has_host())
        .map(|u| u.origin().ascii_serialization())
        .ok_or_else(|| GitHubError::ApiUrl(url.into()))
}

/// An octocrab failure as ours: GitHub's answer, the transport's own error, or the
/// innermost cause octocrab gave.
fn failure(what: &str, error: octocrab::Error) -> GitHubError {
    let what = what.to_string();
    let error = match error {
        octocrab::Error::GitHub { source, .. } => {
            return GitHubError::Status {
                what,
                status: source.status_code.as_u16(),
                message: source.message.clone(),
            }
        }
        octocrab::Error::Service { source, .. } => match source.downcast::<TransportError>() {
            Ok(transport) => {
                return match *transport {
                    TransportError::RateLimited { wait_s } => GitHubError::RateLimited {
                        what,
                        wait_s,
                        max_s: MAX_WAIT.as_secs(),
                    },
                    error => GitHubError::Transport { what, error },
                }
            }
            Err(other) => other,
        },
        other => Box::new(other),
    };
    let mut innermost: &(dyn std::error::Error + 'static) = error.as_ref();
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    GitHubError::Answer {
        what,
        message: innermost.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{Answer, Request, Server};
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicU32, Ordering};

    const TOKEN: &str = "ghs_not-a-real-token";

    fn quick() -> Retry {
        Retry {
            attempts: 5,
            first_delay: Duration::from_millis(10),
        }
    }

    fn github(server: &Server) -> GitHub {
        GitHub::new(&server.url, "o/r", TOKEN, quick()).unwrap()
    }

    fn asset_json(id: u64, name: &str) -> Value {
        json!({
            "url": format!("https://api.github.com/repos/o/r/releases/assets/{id}"),
            "browser_download_url": "https://github.com/o/r/releases/download/t/a",
            "id": id, "node_id": "RA_1", "name": name, "label": null, "state": "uploaded",
            "content_type": "application/json", "size": 2, "digest": null,
            "download_count": 0, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "uploader": null,
        })
    }

    fn release_json(id: u64, tag: &str, body: &str, assets: Value) -> Value {
        json!({
            "url": format!("https://api.github.com/repos/o/r/releases/{id}"),
            "html_url": format!("https://github.com/o/r/releases/tag/{tag}"),
            "assets_url": format!("https://api.github.com/repos/o/r/releases/{id}/assets"),
            "upload_url": "https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}",
            "tarball_url": null, "zipball_url": null, "id": id, "node_id": "RE_1",
            "tag_name": tag, "target_commitish": "main", "name": tag, "body": body,
            "draft": false, "prerelease": false, "created_at": "2026-01-01T00:00:00Z",
            "published_at": "2026-01-01T00:00:00Z", "author": null, "assets": assets,
        })
    }

    fn user_json(login: &str) -> Value {
        let url = "https://api.github.com/users/x";
        json!({
            "login": login, "id": 1, "node_id": "U_1", "avatar_url": url, "gravatar_id": "",
            "url": url, "html_url": url, "followers_url": url, "following_url": url,
            "gists_url": url, "starred_url": url, "subscriptions_url": url,
            "organizations_url": url, "repos_url": url, "events_url": url,
            "received_events_url": url, "type": "User", "site_admin": false,
        })
    }

    fn comment_json(id: u64, login: &str, body: &str) -> Value {
        json!({
            "id": id, "node_id": "IC_1",
            "url": format!("https://api.github.com/repos/o/r/issues/comments/{id}"),
            "html_url": format!("https://github.com/o/r/issues/7#issuecomment-{id}"),
            "body": body, "user": user_json(login), "created_at": "2026-01-01T00:00:00Z",
        })
    }

    fn ok(body: Value) -> Answer {
        Answer::new(200, &body.to_string()).header("Content-Type", "application/json")
    }

    fn paths(server: &Server) -> Vec<String> {
        server
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    #[test]
    fn server_errors_and_rate_limits_are_retried_as_github_says() {
        let calls = AtomicU32::new(0);
        let server = Server::start("127.0.0.1", move |_| {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Answer::new(502, r#"{"message": "Bad Gateway"}"#),
                1 => Answer::new(
                    403,
                    r#"{"message": "You have exceeded a secondary rate limit"}"#,
                )
                .header("Retry-After", "0"),
                2 => Answer::new(429, r#"{"message": "API rate limit exceeded"}"#)
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-reset", "0"),
                _ => ok(release_json(3, "image-1", "<!-- m -->", json!([]))),
            }
        });
        let release = github(&server).release_by_tag("image-1").unwrap().unwrap();
        assert_eq!((release.id, release.tag_name.as_str()), (3, "image-1"));
        let requests = server.requests();
        assert_eq!(requests.len(), 4, "{:?}", paths(&server));
        assert!(requests
            .iter()
            .all(|r| r.path == "/repos/o/r/releases/tags/image-1"
                && r.header("authorization") == Some(&format!("Bearer {TOKEN}"))
                && r.header("x-github-api-version") == Some("2022-11-28")));
    }

    #[test]
    fn failures_keep_their_status_or_say_how_long_github_asked_to_wait() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset = (now + 3600).to_string();
        let server = Server::start("127.0.0.1", move |request: &Request| {
            match request.path.as_str() {
                "/repos/o/r/releases/tags/limited" => Answer::new(403, "{}")
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-reset", &reset),
                "/repos/o/r/releases/tags/down" => Answer::new(503, r#"{"message": "down"}"#),
                "/user" => Answer::new(
                    403,
                    r#"{"message": "Resource not accessible by integration"}"#,
                ),
                _ => Answer::new(404, r#"{"message": "Not Found"}"#),
            }
        });
        let github = github(&server);
        let err = github.release_by_tag("limited").unwrap_err();
        assert!(
            matches!(
                err,
                GitHubError::RateLimited {
                    wait_s: 3600..=3602,
                    max_s: 120,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(server.requests().len(), 1, "an hour is not waited");
        let err = github.release_by_tag("down").unwrap_err();
        assert_eq!(
            err.to_string(),
            "reading release down: GitHub answered HTTP 503: down"
        );
        assert_eq!(server.requests().len(), 6, "five tries");
        assert!(
            github.release_by_tag("none").unwrap().is_none(),
            "404 is none"
        );
        assert_eq!(github.authenticated_login().unwrap(), None);
        let requests = server.requests();
        assert_eq!(requests.len(), 8, "a refusal is not retried");
    }

    #[test]
    fn a_rate_limit_that_outlasts_the_tries_is_no_refusal_of_the_token() {
        let server = Server::start("127.0.0.1", |_| {
            Answer::new(
                403,
                r#"{"message": "You have exceeded a secondary rate limit"}"#,
            )
            .header("Retry-After", "0")
        });
        let err = github(&server).release_by_tag("image-1").unwrap_err();
        assert!(!err.is_forbidden(), "{err:?}");
        assert!(
            matches!(
                err,
                GitHubError::Transport {
                    error: TransportError::StillRateLimited { attempts: 5 },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 5);
    }

    #[test]
    fn the_asset_download_follows_storage_elsewhere_without_the_token() {
        let storage = Server::start("127.0.0.2", |_| Answer::new(200, "{\"elsewhere\": 1}"));
        let away = format!("{}/download/1", storage.url);
        let server = Server::start("127.0.0.1", move |request: &Request| {
            match request.path.as_str() {
                "/repos/o/r/releases?per_page=100&page=1" => ok(json!([
                    release_json(
                        9,
                        "image-new",
                        "<!-- m -->",
                        json!([asset_json(1, "image.json")])
                    ),
                    release_json(
                        8,
                        "image-old",
                        "<!-- m -->",
                        json!([asset_json(2, "image.json")])
                    ),
                ])),
                "/repos/o/r/releases/assets/1" => Answer::new(302, "").header("Location", &away),
                "/repos/o/r/releases/assets/2" => {
                    Answer::new(302, "").header("Location", "/download/2")
                }
                "/download/2" => Answer::new(200, "{\"home\": 2}"),
                _ => Answer::new(404, "{}"),
            }
        });
        let github = github(&server);
        let (release, content) = github
            .latest_asset("<!-- m -->", "image.json", "none")
            .unwrap()
            .unwrap();
        assert_eq!(
            (release.tag_name.as_str(), content.as_str()),
            ("image-new", "{\"elsewhere\": 1}")
        );
        let at_storage = storage.requests();
        assert_eq!(at_storage.len(), 1);
        assert_eq!(
            at_storage[0].header("authorization"),
            None,
            "the token left GitHub"
        );
        // Within GitHub's origin the token goes along.
        let (_, content) = github
            .latest_asset("<!-- m -->", "image.json", "image-new")
            .unwrap()
            .unwrap();
        assert_eq!(content, "{\"home\": 2}");
        let home = server.requests().pop().unwrap();
        assert_eq!(home.path, "/download/2");
        assert_eq!(
            home.header("authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(home.header("accept"), Some("application/octet-stream"));
    }

    #[test]
    fn comments_are_found_by_author_and_marker_and_edited_with_patch() {
        let server = Server::start("127.0.0.1", |request: &Request| {
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/repos/o/r/issues/7/comments?per_page=100&page=1") => ok(json!([
                    // A deleted account's comment: GitHub gives no user.
                    json!({
                        "id": 0, "node_id": "IC_0",
                        "url": "https://api.github.com/repos/o/r/issues/comments/0",
                        "html_url": "https://github.com/o/r/issues/7#issuecomment-0",
                        "body": "<!-- m -->\nghost", "user": null,
                        "created_at": "2026-01-01T00:00:00Z",
                    }),
                    comment_json(1, "mallory", "<!-- m -->\nplanted"),
                    comment_json(2, "github-actions[bot]", "> <!-- m -->\nquoted"),
                    comment_json(3, "GitHub-Actions[bot]", "<!-- m -->\nours"),
                ])),
                ("PATCH", "/repos/o/r/issues/comments/3") => {
                    let body: Value = serde_json::from_str(&request.body).unwrap();
                    ok(comment_json(
                        3,
                        "github-actions[bot]",
                        body["body"].as_str().unwrap(),
                    ))
                }
                ("POST", "/repos/o/r/issues/8/comments") => Answer::new(
                    201,
                    &comment_json(4, "github-actions[bot]", "<!-- m -->\nnew").to_string(),
                ),
                _ => Answer::new(404, "{}"),
            }
        });
        let github = github(&server);
        let ours = github
            .find_comment(7, "<!-- m -->", "github-actions[bot]")
            .unwrap()
            .unwrap();
        assert_eq!(ours.id, 3);
        let edited = github
            .update_comment(ours.id, "<!-- m -->\nedited")
            .unwrap();
        assert_eq!(edited.body.as_deref(), Some("<!-- m -->\nedited"));
        let posted = github.create_comment(8, "<!-- m -->\nnew").unwrap();
        assert_eq!(posted.id, 4);
        assert_eq!(
            paths(&server)[1..],
            [
                "PATCH /repos/o/r/issues/comments/3",
                "POST /repos/o/r/issues/8/comments"
            ]
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
            GitHub::new("https://api.github.com", "no-slash", "t", default_retry()),
            Err(GitHubError::Repository(_))
        ));
        assert!(matches!(
            GitHub::new("api.github.com", "o/r", "t", default_retry()),
            Err(GitHubError::ApiUrl(_))
        ));
    }
}
