//! Keystone v3 and Glance v2 over HTTP (reqwest, blocking): one token per run, endpoints
//! from the token's catalog, JSON always asked for (Glance answers HTML errors otherwise),
//! and unreachable endpoints, timeouts and 5xx retried with backoff before giving up.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::credentials::Credentials;

#[derive(Debug, Error)]
pub enum OpenStackError {
    #[error("{0}")]
    Config(String),
    #[error("OpenStack refused the credentials (HTTP 401) from {}: check them (values are not shown)", .variables.join(", "))]
    Unauthorized { variables: Vec<&'static str> },
    #[error("{method} {url}: HTTP {status}: {message}")]
    Api {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{method} {url}: {reason}, still after {attempts} attempts")]
    Unavailable {
        method: String,
        url: String,
        reason: String,
        attempts: u32,
    },
}

impl OpenStackError {
    /// Whether the cloud (not the input) failed: exit 3 rather than 2.
    pub fn is_external(&self) -> bool {
        matches!(self, OpenStackError::Unavailable { .. })
    }
}

/// How many tries and how long between them, for transient HTTP failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 4,
            first_delay: Duration::from_millis(500),
        }
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

/// An authenticated session: the token and the catalog it came with.
pub struct Cloud {
    http: Client,
    token: SecretString,
    catalog: Vec<CatalogEntry>,
    /// The project the token is scoped to (`token.project.id`).
    project_id: Option<String>,
    region: Option<String>,
    interface: String,
    backoff: Backoff,
    /// HTTP requests made, for tests and `-v`.
    pub requests: std::cell::Cell<u32>,
}

impl Cloud {
    /// Logs in once (`POST /v3/auth/tokens`).
    pub fn connect(credentials: &Credentials, backoff: Backoff) -> Result<Cloud, OpenStackError> {
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("uworker-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OpenStackError::Config(format!("HTTP client: {e}")))?;
        let url = format!("{}/auth/tokens", credentials.auth_url);
        let body = credentials.token_request();
        let response = send(&backoff, Method::POST, &url, || http.post(&url).json(&body))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(OpenStackError::Unauthorized {
                variables: credentials.variables_used.clone(),
            });
        }
        let response = check(Method::POST, &url, response)?;
        let token = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(|t| SecretString::from(t.to_string()))
            .ok_or_else(|| {
                OpenStackError::Config(format!("{url}: no X-Subject-Token in the answer"))
            })?;
        let body: Value = response
            .json()
            .map_err(|e| OpenStackError::Config(format!("{url}: {e}")))?;
        let catalog = serde_json::from_value(body["token"]["catalog"].clone()).unwrap_or_default();
        let project_id = body["token"]["project"]["id"].as_str().map(str::to_string);
        Ok(Cloud {
            http,
            token,
            catalog,
            project_id,
            region: credentials.region.clone(),
            interface: credentials.interface.clone(),
            backoff,
            requests: std::cell::Cell::new(1),
        })
    }

    /// The project the token is scoped to: what "owned by this project" means.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
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
                    "no `{}` endpoint of `{service_type}`{} in the catalog (OS_INTERFACE, OS_REGION_NAME)",
                    self.interface,
                    self.region.as_ref().map(|r| format!(" in region {r}")).unwrap_or_default()
                ))
            })
    }

    /// A request with the token, JSON accepted, retried when the cloud falters.
    pub fn call(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, OpenStackError> {
        self.requests.set(self.requests.get() + 1);
        let response = send(&self.backoff, method.clone(), url, || {
            build(
                self.http
                    .request(method.clone(), url)
                    .header("X-Auth-Token", self.token.expose_secret())
                    .header("Accept", "application/json"),
            )
        })?;
        check(method, url, response)
    }
}

/// Sends with retries on connection errors, timeouts, 5xx and 429.
fn send(
    backoff: &Backoff,
    method: Method,
    url: &str,
    request: impl Fn() -> RequestBuilder,
) -> Result<Response, OpenStackError> {
    let mut delay = backoff.first_delay;
    let mut last = String::new();
    for attempt in 1..=backoff.attempts.max(1) {
        match request().send() {
            Ok(r)
                if r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS =>
            {
                last = format!("HTTP {}", r.status().as_u16());
            }
            Ok(r) => return Ok(r),
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                last = if e.is_timeout() {
                    "timed out".into()
                } else {
                    "cannot connect".into()
                };
            }
            Err(e) => {
                return Err(OpenStackError::Config(format!("{method} {url}: {e}")));
            }
        }
        if attempt < backoff.attempts {
            std::thread::sleep(delay);
            delay *= 2;
        }
    }
    Err(OpenStackError::Unavailable {
        method: method.to_string(),
        url: url.to_string(),
        reason: last,
        attempts: backoff.attempts.max(1),
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
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A loopback server that answers each connection with the next status in turn
    /// (a faltering cloud, which the real Keystone and Glance cannot be made to be).
    fn faltering(statuses: &'static [u16]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for (stream, status) in listener.incoming().zip(statuses) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
            }
        });
        url
    }

    fn quick(attempts: u32) -> Backoff {
        Backoff {
            attempts,
            first_delay: Duration::from_millis(10),
        }
    }

    #[test]
    fn server_errors_and_rate_limits_are_retried_until_an_answer() {
        let url = faltering(&[503, 429, 502, 200]);
        let http = Client::new();
        let response = send(&quick(4), Method::GET, &url, || http.get(&url)).unwrap();
        assert_eq!(response.status(), 200);
    }

    #[test]
    fn retries_end_with_an_external_failure_that_names_the_last_reason() {
        let url = faltering(&[500, 500]);
        let http = Client::new();
        let err = send(&quick(2), Method::GET, &url, || http.get(&url)).unwrap_err();
        assert!(err.is_external());
        assert_eq!(
            err.to_string(),
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
    fn client_errors_are_not_retried() {
        let url = faltering(&[404, 200]);
        let http = Client::new();
        let response = send(&quick(4), Method::GET, &url, || http.get(&url)).unwrap();
        assert_eq!(response.status(), 404, "answered at once, not retried");
    }
}
