//! Keystone v3 and Glance v2 over HTTP (reqwest, blocking): a token renewed before it
//! expires (and once more if the cloud answers 401 anyway), endpoints from the token's
//! catalog, JSON always asked for (Glance answers HTML errors otherwise), calls retried
//! as `http::retry` says (unreachable endpoints, timeouts, 5xx, 429, `Retry-After`)
//! before giving up, and no redirect followed to another origin (the token would go along).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::credentials::Credentials;
use crate::http::redirects::{self, RedirectRefused};
use crate::http::retry::{self, Failure, Retry};
use crate::http::Redirects;

#[derive(Debug, Error)]
pub enum OpenStackError {
    #[error("{0}")]
    Config(String),
    /// A call without an answer to use: a body that is not what was asked, or a request
    /// that could not be sent. The cloud's or the network's doing, so External (3).
    #[error("{call}")]
    Http {
        call: String,
        #[source]
        error: reqwest::Error,
    },
    #[error("OpenStack refused the credentials (HTTP 401) from {}: check them (values are not shown)", .variables.join(", "))]
    Unauthorized { variables: Vec<&'static str> },
    #[error("{method} {url}: HTTP {status}: {message}")]
    Api {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{method} {url}")]
    Redirect {
        method: String,
        url: String,
        #[source]
        refused: RedirectRefused,
    },
    #[error("{method} {url}: {reason}, still after {attempts} attempts")]
    Unavailable {
        method: String,
        url: String,
        reason: String,
        attempts: u32,
    },
}

impl crate::exit::Coded for OpenStackError {
    /// External (3) when the cloud failed, bad input (2) when it refused what it was given.
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            OpenStackError::Unavailable { .. }
            | OpenStackError::Redirect { .. }
            | OpenStackError::Http { .. } => Code::External,
            OpenStackError::Config(_)
            | OpenStackError::Unauthorized { .. }
            | OpenStackError::Api { .. } => Code::BadInput,
        }
    }
}

/// A new login with a session's credentials, in its region, made on another thread.
pub struct Reconnect {
    credentials: Credentials,
    retry: Retry,
    region: Option<String>,
}

impl Reconnect {
    pub fn connect(self) -> Result<Cloud, OpenStackError> {
        Ok(Cloud::connect(&self.credentials, self.retry)?.in_region(self.region.as_deref()))
    }
}

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    service_type: String,
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Deserialize)]
struct CatalogEndpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// A token and when to renew it.
struct Token {
    secret: SecretString,
    /// When the login that made it started (a little before Keystone issued it).
    obtained: Instant,
    /// `expires_at - issued_at` by Keystone's clock; None if the answer lacks them.
    lifetime: Option<Duration>,
}

/// What one login gives.
struct Login {
    token: Token,
    project_id: Option<String>,
    catalog: Vec<CatalogEntry>,
}

/// How long before its expiry a token is renewed: 5 minutes, or a quarter of the
/// lifetime for short-lived tokens.
pub fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 4).min(Duration::from_secs(300))
}

/// Whether a token `age` old, which lives `lifetime`, is renewed before the next call.
pub fn needs_renewal(lifetime: Duration, age: Duration) -> bool {
    lifetime.saturating_sub(age) < renewal_margin(lifetime)
}

/// An authenticated session: the token, the project it is scoped to and the catalog it
/// came with, and the credentials to renew it with (the same ones, always). The region
/// picks endpoints only: views of other regions (`in_region`) share the token.
pub struct Cloud {
    http: Client,
    credentials: Credentials,
    token: Rc<RefCell<Token>>,
    project_id: Option<String>,
    catalog: Rc<Vec<CatalogEntry>>,
    region: Option<String>,
    interface: String,
    retry: Retry,
    /// HTTP requests made (tests hold the Glance lookup to its two requests with it).
    pub requests: Cell<u32>,
}

impl Cloud {
    /// Logs in (`POST /v3/auth/tokens`).
    pub fn connect(credentials: &Credentials, retry: Retry) -> Result<Cloud, OpenStackError> {
        let http = crate::http::client(Redirects::SameOrigin, Duration::from_secs(60)).map_err(
            |error| OpenStackError::Http {
                call: "making the HTTP client".into(),
                error,
            },
        )?;
        let login = login(&http, credentials, &retry)?;
        Ok(Cloud {
            http,
            credentials: credentials.clone(),
            token: Rc::new(RefCell::new(login.token)),
            project_id: login.project_id,
            catalog: Rc::new(login.catalog),
            region: credentials.region.clone(),
            interface: credentials.interface.clone(),
            retry,
            requests: Cell::new(1),
        })
    }

    /// What a thread needs to open a session of its own with the same credentials in the
    /// same region (a session is not shared between threads).
    pub fn reconnect(&self) -> Reconnect {
        Reconnect {
            credentials: self.credentials.clone(),
            retry: self.retry.clone(),
            region: self.region.clone(),
        }
    }

    /// The same login, its endpoints picked in `region` (None: the credentials' own). One
    /// Keystone serves every region of a cloud, so the token is shared, renewals included.
    pub fn in_region(&self, region: Option<&str>) -> Cloud {
        Cloud {
            http: self.http.clone(),
            credentials: self.credentials.clone(),
            token: Rc::clone(&self.token),
            project_id: self.project_id.clone(),
            catalog: Rc::clone(&self.catalog),
            region: region
                .map(str::to_string)
                .or_else(|| self.credentials.region.clone()),
            interface: self.interface.clone(),
            retry: self.retry.clone(),
            requests: Cell::new(0),
        }
    }

    /// The same login and region with a client for transfers of any length (an image's
    /// bytes): no bound on a whole request, a connection that stalls for `stall` fails.
    pub fn for_transfers(&self, stall: Duration) -> Result<Cloud, OpenStackError> {
        let http = crate::http::client(
            Redirects::SameOrigin,
            crate::http::Timeout::Transfer { stall },
        )
        .map_err(|error| OpenStackError::Http {
            call: "making the HTTP client".into(),
            error,
        })?;
        let mut view = self.in_region(self.region.as_deref());
        view.http = http;
        Ok(view)
    }

    /// The region whose endpoints this view uses (None: any).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The ID of the project the token is scoped to: the owner of this project's images.
    pub fn project_id(&self) -> Result<&str, OpenStackError> {
        self.project_id.as_deref().ok_or_else(|| {
            OpenStackError::Config(
                "the token is not scoped to a project: set OS_PROJECT_NAME or OS_PROJECT_ID (or use an application credential), so the tool knows which images are this project's".into(),
            )
        })
    }

    /// The URL of a service from the catalog, by type, interface and region.
    pub fn endpoint(&self, service_type: &str) -> Result<String, OpenStackError> {
        let service = self
            .catalog
            .iter()
            .find(|s| s.service_type == service_type)
            .ok_or_else(|| {
                OpenStackError::Config(format!(
                    "the token's catalog has no `{service_type}` service"
                ))
            })?;
        service
            .endpoints
            .iter()
            .find(|e| {
                e.interface == self.interface
                    && self.region.as_ref().is_none_or(|r| {
                        e.region_id.as_ref() == Some(r) || e.region.as_ref() == Some(r)
                    })
            })
            .map(|e| e.url.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                OpenStackError::Config(format!(
                    "no `{}` endpoint of `{service_type}`{} in the catalog (OS_INTERFACE, OS_REGION_NAME, a target's `region`)",
                    self.interface,
                    self.region.as_ref().map(|r| format!(" in region {r}")).unwrap_or_default()
                ))
            })
    }

    /// GET `url` and its JSON answer as `T`; a body that is not that names the call.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OpenStackError> {
        self.call(Method::GET, url, |r| r)?
            .json()
            .map_err(|error| OpenStackError::Http {
                call: format!("GET {url}"),
                error,
            })
    }

    /// A request with the token, JSON accepted, retried when the cloud falters. A token
    /// near its expiry is renewed first; a 401 on a token believed valid (revoked, or
    /// expired early) gets one new login and one more try, never more.
    pub fn call(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, OpenStackError> {
        if self.token_due() {
            self.renew()?;
        }
        let response = self.send_with_token(&method, url, &build)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check(method, url, response);
        }
        self.renew()?;
        let response = self.send_with_token(&method, url, &build)?;
        check(method, url, response)
    }

    /// A request with the token, sent once: its body (a stream) cannot be sent twice, so
    /// the caller retries the whole transfer. A token near its expiry is renewed first.
    pub fn send_once(
        &self,
        method: Method,
        url: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, OpenStackError> {
        if self.token_due() {
            self.renew()?;
        }
        self.requests.set(self.requests.get() + 1);
        let request = build(self.authorized(&method, url, &self.token.borrow()));
        let response = request.send().map_err(|error| OpenStackError::Http {
            call: format!("{method} {url}"),
            error,
        })?;
        check(method, url, response)
    }

    fn send_with_token(
        &self,
        method: &Method,
        url: &str,
        build: &impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, OpenStackError> {
        self.requests.set(self.requests.get() + 1);
        let token = self.token.borrow();
        send(&self.retry, method.clone(), url, || {
            build(self.authorized(method, url, &token))
        })
    }

    /// A request with `token`, JSON accepted.
    fn authorized(&self, method: &Method, url: &str, token: &Token) -> RequestBuilder {
        self.http
            .request(method.clone(), url)
            .header("X-Auth-Token", token.secret.expose_secret())
            .header("Accept", "application/json")
    }

    fn token_due(&self) -> bool {
        let token = self.token.borrow();
        token
            .lifetime
            .is_some_and(|lifetime| needs_renewal(lifetime, token.obtained.elapsed()))
    }

    /// A new token from the same credentials; the catalog and project stay as they were.
    fn renew(&self) -> Result<(), OpenStackError> {
        self.requests.set(self.requests.get() + 1);
        let login = login(&self.http, &self.credentials, &self.retry)?;
        *self.token.borrow_mut() = login.token;
        Ok(())
    }
}

/// `POST /auth/tokens`: the token, its lifetime, its project and its catalog.
fn login(http: &Client, credentials: &Credentials, retry: &Retry) -> Result<Login, OpenStackError> {
    let url = format!("{}/auth/tokens", credentials.auth_url);
    let body = credentials.token_request();
    let obtained = Instant::now();
    let response = send(retry, Method::POST, &url, || http.post(&url).json(&body))?;
    if response.status() == StatusCode::UNAUTHORIZED {
        return Err(OpenStackError::Unauthorized {
            variables: credentials.variables_used.clone(),
        });
    }
    let response = check(Method::POST, &url, response)?;
    let secret = response
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .map(|t| SecretString::from(t.to_string()))
        .ok_or_else(|| {
            OpenStackError::Config(format!("{url}: no X-Subject-Token in the answer"))
        })?;
    let body: Value = response.json().map_err(|error| OpenStackError::Http {
        call: format!("POST {url}"),
        error,
    })?;
    let token = &body["token"];
    Ok(Login {
        token: Token {
            secret,
            obtained,
            lifetime: lifetime(token),
        },
        project_id: token["project"]["id"].as_str().map(str::to_string),
        catalog: serde_json::from_value(token["catalog"].clone()).unwrap_or_default(),
    })
}

/// `expires_at - issued_at` of a token body, both by Keystone's clock (a skewed local
/// clock does not matter). Keystone writes `2026-01-01T00:00:00.000000Z`.
fn lifetime(token: &Value) -> Option<Duration> {
    let time = |key: &str| {
        token[key]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    };
    time("expires_at")?.duration_since(time("issued_at")?).ok()
}

/// Sends as `http::retry` allows; what is still failing after that is an error.
fn send(
    retry: &Retry,
    method: Method,
    url: &str,
    request: impl Fn() -> RequestBuilder,
) -> Result<Response, OpenStackError> {
    let label = format!("{method} {url}");
    let unavailable = |reason: String, attempts| OpenStackError::Unavailable {
        method: method.to_string(),
        url: url.to_string(),
        reason,
        attempts,
    };
    retry::send(retry, &label, || request().send()).map_err(|failure| match failure {
        Failure::Exhausted { last, attempts } => {
            unavailable(format!("HTTP {}", last.status().as_u16()), attempts)
        }
        Failure::TooLong {
            last,
            wait,
            attempts,
        } => unavailable(
            format!(
                "HTTP {} asking to wait {} s, longer than the {} s a call waits",
                last.status().as_u16(),
                wait.as_secs(),
                retry::MAX_WAIT.as_secs()
            ),
            attempts,
        ),
        Failure::Transport { error, attempts } => {
            if let Some(refused) = redirects::refusal(&error) {
                OpenStackError::Redirect {
                    method: method.to_string(),
                    url: url.to_string(),
                    refused,
                }
            } else if retry::retryable(&error) {
                unavailable(retry::transport_reason(&error).to_string(), attempts)
            } else {
                OpenStackError::Http {
                    call: label.clone(),
                    error,
                }
            }
        }
    })
}

/// A non-success answer as an error with the service's own message.
fn check(method: Method, url: &str, response: Response) -> Result<Response, OpenStackError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            // Keystone: {"error": {"message"}}; Glance: {"message"} or {"title", "description"}.
            v["error"]["message"]
                .as_str()
                .or(v["message"].as_str())
                .or(v["description"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(OpenStackError::Api {
        method: method.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Chain;
    use crate::exit::Coded as _;
    use crate::loopback::{Answer, Server};

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            first_delay: Duration::from_millis(10),
        }
    }

    #[test]
    fn retries_end_with_an_external_failure_that_names_the_last_reason() {
        let server = Server::start("127.0.0.1", |_| Answer::new(500, "{}"));
        let url = format!("{}/", server.url);
        let http = Client::new();
        let err = send(&quick(2), Method::GET, &url, || http.get(&url)).unwrap_err();
        assert_eq!(err.code(), crate::exit::Code::External);
        assert_eq!(
            Chain(&err).to_string(),
            format!("GET {url}: HTTP 500, still after 2 attempts")
        );
        // Nothing listens on port 1: every attempt fails to connect.
        let url = "http://127.0.0.1:1/v3";
        let err = send(&quick(3), Method::GET, url, || http.get(url)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "GET http://127.0.0.1:1/v3: cannot connect, still after 3 attempts"
        );
    }

    #[test]
    fn a_wait_longer_than_the_cap_fails_at_once_and_says_why() {
        let server = Server::start("127.0.0.1", |_| {
            Answer::new(503, "{}").header("Retry-After", "3600")
        });
        let url = format!("{}/", server.url);
        let http = Client::new();
        let err = send(&quick(4), Method::GET, &url, || http.get(&url)).unwrap_err();
        assert_eq!(err.code(), crate::exit::Code::External);
        assert_eq!(
            Chain(&err).to_string(),
            format!("GET {url}: HTTP 503 asking to wait 3600 s, longer than the 120 s a call waits, still after 1 attempts")
        );
        assert_eq!(server.requests().len(), 1);
    }
}

/// The token's life and the redirect rule, against a loopback Keystone that issues tokens
/// of a chosen lifetime and services that answer 401 or redirect on purpose (answers the
/// real Keystone and Glance cannot be made to give on cue).
#[cfg(test)]
mod session_tests {
    use super::*;
    use crate::env::Env;
    use crate::error_chain::Chain;
    use crate::exit::Coded as _;
    use crate::loopback::{Answer, Request, Server};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::SystemTime;

    const SECRET: &str = "pa$$ \"word\"\nline2";

    /// A Keystone on 127.0.0.1 that issues `tok-1`, `tok-2`, ... living `lifetime`, and
    /// answers every other request with `service(request, token number)`.
    fn keystone(
        lifetime: Duration,
        service: impl Fn(&Request, u32) -> Answer + Send + Sync + 'static,
    ) -> Server {
        let issued = Arc::new(AtomicU32::new(0));
        Server::start("127.0.0.1", move |request| {
            if request.method == "POST" && request.path == "/v3/auth/tokens" {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                let now = SystemTime::now();
                let body = serde_json::json!({"token": {
                    "issued_at": humantime::format_rfc3339_micros(now).to_string(),
                    "expires_at": humantime::format_rfc3339_micros(now + lifetime).to_string(),
                    "project": {"id": "project-1"},
                    "catalog": [],
                }});
                return Answer::new(201, &body.to_string())
                    .header("X-Subject-Token", &format!("tok-{n}"))
                    .header("Content-Type", "application/json");
            }
            let token = request
                .header("x-auth-token")
                .and_then(|t| t.strip_prefix("tok-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            service(request, token)
        })
    }

    fn connect(server: &Server) -> Cloud {
        let env = Env::from_pairs(
            [
                ("OS_AUTH_URL", format!("{}/v3", server.url)),
                ("OS_USERNAME", "ci".to_string()),
                ("OS_PASSWORD", SECRET.to_string()),
                ("OS_PROJECT_NAME", "p".to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let credentials = Credentials::from_env(&env).unwrap().unwrap();
        let retry = Retry {
            attempts: 1,
            first_delay: Duration::from_millis(1),
        };
        Cloud::connect(&credentials, retry).unwrap()
    }

    fn logins(server: &Server) -> Vec<Request> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v3/auth/tokens")
            .collect()
    }

    fn calls(server: &Server, path: &str) -> Vec<Request> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    #[test]
    fn a_token_is_renewed_within_five_minutes_or_a_quarter_of_its_life_from_expiry() {
        let hour = Duration::from_secs(3600);
        let s = Duration::from_secs;
        assert_eq!(renewal_margin(hour), s(300));
        assert!(!needs_renewal(hour, s(3299)));
        assert!(needs_renewal(hour, s(3301)));
        assert!(needs_renewal(hour, s(7200)), "long expired");
        let short = s(20);
        assert_eq!(renewal_margin(short), s(5));
        assert!(!needs_renewal(short, s(14)));
        assert!(needs_renewal(short, s(16)));
        // Keystone's own way of writing the times gives the lifetime.
        let body = serde_json::json!({
            "issued_at": "2026-11-30T06:41:38.000000Z",
            "expires_at": "2026-11-30T07:41:38.000000Z"
        });
        assert_eq!(lifetime(&body), Some(hour));
        assert_eq!(lifetime(&serde_json::json!({})), None);
    }

    #[test]
    fn a_token_near_its_expiry_is_renewed_before_the_next_call() {
        let server = keystone(Duration::from_secs(2), |_, token| {
            Answer::new(200, &format!("{{\"token\": {token}}}"))
        });
        let cloud = connect(&server);
        let url = format!("{}/thing", server.url);
        cloud.call(Method::GET, &url, |r| r).unwrap();
        assert_eq!(logins(&server).len(), 1, "a fresh token is used as it is");
        // 1.6 s of 2: less than a quarter of its life left.
        std::thread::sleep(Duration::from_millis(1600));
        cloud.call(Method::GET, &url, |r| r).unwrap();
        assert_eq!(logins(&server).len(), 2);
        let tokens: Vec<_> = calls(&server, "/thing")
            .iter()
            .map(|r| r.header("x-auth-token").unwrap_or("").to_string())
            .collect();
        assert_eq!(tokens, ["tok-1", "tok-2"]);
    }

    #[test]
    fn a_401_on_a_valid_token_means_one_new_login_and_one_more_try() {
        // The first token is refused (revoked, say), the second one accepted.
        let server = keystone(Duration::from_secs(3600), |_, token| match token {
            1 => Answer::new(401, "{}"),
            _ => Answer::new(200, "{}"),
        });
        let cloud = connect(&server);
        let url = format!("{}/thing", server.url);
        let response = cloud.call(Method::GET, &url, |r| r).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(calls(&server, "/thing").len(), 2);
        let logins = logins(&server);
        assert_eq!(logins.len(), 2);
        // The same credentials, both times.
        assert_eq!(logins[0].body, logins[1].body);
        assert!(logins[1]
            .body
            .contains(&serde_json::json!(SECRET).to_string()));
    }

    #[test]
    fn a_401_after_a_new_login_is_an_error_not_a_loop() {
        let server = keystone(Duration::from_secs(3600), |_, _| {
            Answer::new(401, r#"{"error": {"message": "go away"}}"#)
        });
        let cloud = connect(&server);
        let url = format!("{}/thing", server.url);
        let err = cloud.call(Method::GET, &url, |r| r).unwrap_err();
        assert!(
            matches!(err, OpenStackError::Api { status: 401, .. }),
            "{err}"
        );
        assert_eq!(calls(&server, "/thing").len(), 2, "one call, one repeat");
        assert_eq!(logins(&server).len(), 2, "the first login and one more");
    }

    /// An answer that is not the JSON asked for is the cloud's fault: exit 3, the call
    /// named, the parser's words as the cause.
    #[test]
    fn an_answer_that_does_not_decode_is_external_and_names_the_call() {
        let server = keystone(Duration::from_secs(3600), |_, _| Answer::new(200, "<html>"));
        let cloud = connect(&server);
        let url = format!("{}/v2/images", server.url);
        let err = cloud.get_json::<Value>(&url).unwrap_err();
        assert_eq!(err.code(), crate::exit::Code::External, "{err}");
        assert_eq!(err.to_string(), format!("GET {url}"));
        assert!(
            Chain(&err)
                .to_string()
                .starts_with(&format!("GET {url}: error decoding")),
            "{}",
            Chain(&err)
        );
    }

    #[test]
    fn a_redirect_to_another_origin_is_refused_and_the_token_stays_home() {
        let elsewhere = Server::start("127.0.0.2", |_| Answer::new(200, "{}"));
        let target = format!("{}/steal", elsewhere.url);
        let server = keystone(Duration::from_secs(3600), move |request, _| {
            match request.path.as_str() {
                "/v2/images" => Answer::new(302, "").header("Location", &target),
                "/moved" => Answer::new(302, "").header("Location", "/here"),
                _ => Answer::new(200, "{}"),
            }
        });
        let cloud = connect(&server);
        let url = format!("{}/v2/images", server.url);
        let err = cloud.call(Method::GET, &url, |r| r).unwrap_err();
        assert_eq!(err.code(), crate::exit::Code::External, "{err}");
        let port = |u: &str| u.rsplit(':').next().unwrap().to_string();
        assert_eq!(
            Chain(&err).to_string(),
            format!(
                "GET {url}: refused a redirect from http://127.0.0.1:{} to another origin, http://127.0.0.2:{}: credentials are only sent to the origin they are for",
                port(&server.url),
                port(&elsewhere.url)
            )
        );
        assert!(elsewhere.requests().is_empty(), "nothing reached 127.0.0.2");
        // Within the origin a redirect is followed, token and all.
        let response = cloud
            .call(Method::GET, &format!("{}/moved", server.url), |r| r)
            .unwrap();
        assert_eq!(response.status(), 200);
        let here = calls(&server, "/here");
        assert_eq!(here.len(), 1);
        assert_eq!(here[0].header("x-auth-token"), Some("tok-1"));
    }

    #[test]
    fn the_login_itself_is_not_sent_on_to_another_origin() {
        let elsewhere = Server::start("127.0.0.2", |_| Answer::new(201, "{}"));
        let target = format!("{}/v3/auth/tokens", elsewhere.url);
        // 307 keeps the method and the body: the password would go along.
        let server = Server::start("127.0.0.1", move |_| {
            Answer::new(307, "").header("Location", &target)
        });
        let env = Env::from_pairs(
            [
                ("OS_AUTH_URL", format!("{}/v3", server.url)),
                ("OS_USERNAME", "ci".to_string()),
                ("OS_PASSWORD", SECRET.to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let credentials = Credentials::from_env(&env).unwrap().unwrap();
        let err = Cloud::connect(&credentials, Retry::default())
            .err()
            .expect("refused");
        assert!(matches!(err, OpenStackError::Redirect { .. }), "{err}");
        assert!(Chain(&err).to_string().contains(&elsewhere.url), "{err}");
        assert!(elsewhere.requests().is_empty(), "nothing reached 127.0.0.2");
    }
}
