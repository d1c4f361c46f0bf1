//! Where octocrab's requests leave: the service at the bottom of its stack. Each request
//! goes out with the tool's own client (`http::client`: user agent, timeouts, redirects
//! followed anywhere but `Authorization` dropped on a hop to another host) through the
//! one retry loop (`http::retry`), on tokio's blocking pool. Relative routes (octocrab's
//! typed calls) are joined to the API URL; the token goes only to the API's and the
//! uploads' origins.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use octocrab::OctoBody;
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::http::retry::{self, Failure, Retry};

/// Why a request got no answer octocrab can read; `GitHub` turns it into its own error.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("GitHub did not answer after {attempts} attempt(s)")]
    Unreachable {
        attempts: u32,
        #[source]
        error: reqwest::Error,
    },
    #[error("rate limited for {wait_s} s more")]
    RateLimited { wait_s: u64 },
    /// Every try met a rate limit: not the token's refusal, which a 403 would look like.
    #[error("GitHub still rate limited after {attempts} attempt(s)")]
    StillRateLimited { attempts: u32 },
    #[error("{url} is not a URL")]
    Url {
        url: String,
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the token is not a header value")]
    Token,
    #[error("the request could not be made")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The bottom of octocrab's stack for one API.
#[derive(Clone)]
pub struct Transport {
    pub client: Client,
    pub retry: Retry,
    /// GITHUB_API_URL without a trailing slash (GitHub Enterprise's ends in /api/v3).
    pub api: String,
    /// `scheme://authority` of the API and of the uploads: where the token may go.
    pub origins: [String; 2],
    pub token: SecretString,
}

/// The media type GitHub's description gives its answers (Prism negotiates on it).
const JSON: &str = "application/json";

/// An answer read whole, so its body can tell a rate limit from a refusal.
struct ReadAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl retry::Answer for ReadAnswer {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn says_rate_limited(&self) -> bool {
        String::from_utf8_lossy(&self.body)
            .to_ascii_lowercase()
            .contains("rate limit")
    }
}

impl ReadAnswer {
    /// A primary (`x-ratelimit-remaining: 0`) or secondary rate limit.
    fn is_rate_limit(&self) -> bool {
        use retry::Answer;
        matches!(self.status.as_u16(), 403 | 429)
            && (self
                .headers
                .get("x-ratelimit-remaining")
                .map(|v| v.as_bytes())
                == Some(b"0")
                || self.says_rate_limited())
    }
}

impl Transport {
    /// The URL a request is for: a route joined to the API, or an absolute URL as it is.
    fn url(&self, uri: &http::Uri) -> String {
        match uri.authority() {
            Some(_) => uri.to_string(),
            None => format!(
                "{}{}",
                self.api,
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            ),
        }
    }

    fn send(&self, parts: http::request::Parts, body: Bytes) -> Result<ReadAnswer, TransportError> {
        let url = self.url(&parts.uri);
        let with_token = reqwest::Url::parse(&url)
            .map(|u| self.origins.contains(&u.origin().ascii_serialization()))
            .map_err(|error| TransportError::Url {
                url: url.clone(),
                error: error.into(),
            })?;
        let mut headers = parts.headers;
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static(JSON));
        }
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static("2022-11-28"),
        );
        if with_token {
            let mut value = HeaderValue::try_from(format!("Bearer {}", self.token.expose_secret()))
                .map_err(|_| TransportError::Token)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let label = format!("github: {} {}", parts.method, parts.uri.path());
        let once = || {
            let mut request = self
                .client
                .request(parts.method.clone(), &url)
                .headers(headers.clone());
            if !body.is_empty() {
                request = request.body(body.clone());
            }
            let response = request.send()?;
            Ok(ReadAnswer {
                status: response.status(),
                headers: response.headers().clone(),
                body: response.bytes()?,
            })
        };
        match retry::send(&self.retry, &label, once) {
            // A 403 rate limit handed to octocrab would read as a refusal of the token.
            Err(Failure::Exhausted { last, attempts }) if last.is_rate_limit() => {
                Err(TransportError::StillRateLimited { attempts })
            }
            // The last answer of a call that kept failing is octocrab's to report.
            Ok(answer) | Err(Failure::Exhausted { last: answer, .. }) => Ok(answer),
            Err(Failure::TooLong { wait, .. }) => Err(TransportError::RateLimited {
                wait_s: wait.as_secs(),
            }),
            Err(Failure::Transport { error, attempts }) => {
                Err(TransportError::Unreachable { attempts, error })
            }
        }
    }
}

impl tower_service::Service<http::Request<OctoBody>> for Transport {
    type Response = http::Response<Full<Bytes>>;
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TransportError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<OctoBody>) -> Self::Future {
        let transport = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| TransportError::Request(e.into()))?
                .to_bytes();
            // The blocking client may not run on the runtime's own thread.
            let answer = tokio::task::spawn_blocking(move || transport.send(parts, body))
                .await
                .map_err(|e| TransportError::Request(e.into()))??;
            let mut response = http::Response::new(Full::new(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::retry::{Answer as _, Verdict};
    use crate::loopback::{Answer, Server};
    use std::time::{Duration, SystemTime};

    fn transport(api: &str) -> Transport {
        let origin = reqwest::Url::parse(api)
            .unwrap()
            .origin()
            .ascii_serialization();
        Transport {
            client: Client::new(),
            retry: Retry {
                attempts: 1,
                first_delay: Duration::from_millis(10),
            },
            api: api.to_string(),
            origins: [origin.clone(), origin],
            token: SecretString::from("ghs_not-a-real-token".to_string()),
        }
    }

    fn get(uri: &str) -> http::request::Parts {
        http::Request::get(uri).body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_token_goes_only_to_githubs_origins() {
        let api = Server::start("127.0.0.1", |_| Answer::new(200, "{}"));
        let elsewhere = Server::start("127.0.0.2", |_| Answer::new(200, "{}"));
        let transport = transport(&api.url);
        transport.send(get("/user"), Bytes::new()).unwrap();
        let away = format!("{}/somewhere", elsewhere.url);
        transport.send(get(&away), Bytes::new()).unwrap();
        assert_eq!(
            api.requests()[0].header("authorization"),
            Some("Bearer ghs_not-a-real-token")
        );
        assert_eq!(elsewhere.requests().len(), 1);
        assert_eq!(elsewhere.requests()[0].header("authorization"), None);
    }

    #[test]
    fn a_secondary_limit_without_retry_after_is_judged_a_rate_limit() {
        let answer = ReadAnswer {
            status: StatusCode::FORBIDDEN,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"message": "You have exceeded a secondary rate limit"}"#),
        };
        assert!(answer.says_rate_limited());
        assert!(answer.is_rate_limit());
        let verdict = crate::github::default_retry().verdict(
            answer.status(),
            answer.headers(),
            answer.says_rate_limited(),
            1,
            SystemTime::now(),
        );
        assert_eq!(verdict, Verdict::RetryAfter(Duration::from_secs(60)));
    }
}
