//! The job service's API, only as far as pre-flight needs it: `GET {root}/token` with
//! HTTP basic auth answers `{"token": "..."}` when the worker's credentials are good.

use std::time::Duration;

use thiserror::Error;

use crate::http::redirects::{self, RedirectRefused};
use crate::http::retry::{self, Failure, Retry};
use crate::http::Redirects;

#[derive(Debug, Error)]
pub enum JobApiError {
    #[error("the job service refused UWORKER_JOB_API_USERNAME/UWORKER_JOB_API_PASSWORD (GET <UWORKER_JOB_API_ROOT>/token: HTTP {0})")]
    Refused(u16),
    /// Why, in a word of ours: reqwest's own text names the URL, which is a secret.
    #[error("GET <UWORKER_JOB_API_ROOT>/token: {0}")]
    Unreachable(String),
    #[error("making the HTTP client for the job service")]
    Client(#[source] reqwest::Error),
    /// Only the redirect's target is named: the root (its origin too) is a secret.
    #[error("GET <UWORKER_JOB_API_ROOT>/token: refused a redirect from the origin of UWORKER_JOB_API_ROOT to another origin, {0}: the credentials were not sent there (give the job service's final URL as UWORKER_JOB_API_ROOT)")]
    Redirect(String),
    #[error("GET <UWORKER_JOB_API_ROOT>/token answered without a token")]
    NoToken,
}

impl crate::exit::Coded for JobApiError {
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            JobApiError::Unreachable(_) | JobApiError::Redirect(_) | JobApiError::Client(_) => {
                Code::External
            }
            JobApiError::Refused(_) | JobApiError::NoToken => Code::BadInput,
        }
    }
}

/// What the messages call the request: the root URL is a worker value, treated as a
/// secret, so they do not repeat it.
const LABEL: &str = "GET <UWORKER_JOB_API_ROOT>/token";

/// Checks the worker's job-API credentials the way the worker itself logs in, retried as
/// `http::retry` allows.
pub fn check_credentials(root: &str, username: &str, password: &str) -> Result<(), JobApiError> {
    check_credentials_with(&Retry::default(), root, username, password)
}

fn check_credentials_with(
    retry: &Retry,
    root: &str,
    username: &str,
    password: &str,
) -> Result<(), JobApiError> {
    let client = crate::http::client(Redirects::SameOrigin, Duration::from_secs(20))
        .map_err(JobApiError::Client)?;
    let url = format!("{}/token", root.trim_end_matches('/'));
    let response = retry::send(retry, LABEL, || {
        client
            .get(&url)
            .basic_auth(username, Some(password))
            .header("Accept", "application/json")
            .send()
    })
    .map_err(|failure| match failure {
        Failure::Exhausted { last, attempts } => JobApiError::Unreachable(format!(
            "HTTP {}, still after {attempts} attempts",
            last.status().as_u16()
        )),
        Failure::TooLong { last, wait, .. } => JobApiError::Unreachable(format!(
            "HTTP {} asking to wait {} s, longer than the {} s a call waits",
            last.status().as_u16(),
            wait.as_secs(),
            retry::MAX_WAIT.as_secs()
        )),
        Failure::Transport { error, attempts } => match redirects::refusal(&error) {
            Some(RedirectRefused::CrossOrigin { to, .. }) => JobApiError::Redirect(to),
            Some(RedirectRefused::TooMany { .. }) => {
                JobApiError::Unreachable("too many redirects".into())
            }
            None => JobApiError::Unreachable(format!(
                "{}, still after {attempts} attempts",
                retry::transport_reason(&error)
            )),
        },
    })?;
    let status = response.status();
    if status.as_u16() == 401 || status.as_u16() == 403 {
        return Err(JobApiError::Refused(status.as_u16()));
    }
    if !status.is_success() {
        return Err(JobApiError::Unreachable(format!(
            "HTTP {}",
            status.as_u16()
        )));
    }
    let body: serde_json::Value = response.json().map_err(|_| JobApiError::NoToken)?;
    match body.get("token").and_then(|t| t.as_str()) {
        Some(t) if !t.is_empty() => Ok(()),
        _ => Err(JobApiError::NoToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{Answer, Server};

    const PASSWORD: &str = "pa$$ \"word\" x";

    #[test]
    fn credentials_never_follow_a_redirect_to_another_origin() {
        let elsewhere = Server::start("127.0.0.2", |_| {
            Answer::new(200, r#"{"token": "t"}"#).header("Content-Type", "application/json")
        });
        let target = format!("{}/rest_api/token", elsewhere.url);
        let service = Server::start("127.0.0.1", move |request| match request.path.as_str() {
            "/away/token" => Answer::new(302, "").header("Location", &target),
            "/moved/token" => Answer::new(307, "").header("Location", "/rest_api/token"),
            _ => Answer::new(200, r#"{"token": "t"}"#).header("Content-Type", "application/json"),
        });
        let err =
            check_credentials(&format!("{}/away", service.url), "worker", PASSWORD).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("GET <UWORKER_JOB_API_ROOT>/token: refused a redirect from the origin of UWORKER_JOB_API_ROOT to another origin, {}: the credentials were not sent there (give the job service's final URL as UWORKER_JOB_API_ROOT)", elsewhere.url)
        );
        assert!(
            !err.to_string().contains(&service.url),
            "the root is a secret"
        );
        assert!(elsewhere.requests().is_empty(), "nothing reached 127.0.0.2");
        // The same origin: followed, and the credentials go along.
        check_credentials(&format!("{}/moved/", service.url), "worker", PASSWORD).unwrap();
        let last = service.requests().pop().unwrap();
        assert_eq!(last.path, "/rest_api/token");
        assert!(last
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")));
    }

    #[test]
    fn a_faltering_service_is_asked_again_and_a_refusal_is_not() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = AtomicU32::new(0);
        let service = Server::start("127.0.0.1", move |request| {
            match (request.path.as_str(), calls.fetch_add(1, Ordering::SeqCst)) {
                ("/flaky/token", 0) => Answer::new(503, ""),
                ("/flaky/token", 1) => Answer::new(429, "").header("Retry-After", "0"),
                ("/flaky/token", _) => Answer::new(200, r#"{"token": "t"}"#),
                _ => Answer::new(401, ""),
            }
        });
        let quick = Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
        };
        check_credentials_with(&quick, &format!("{}/flaky", service.url), "w", PASSWORD).unwrap();
        assert_eq!(service.requests().len(), 3);
        let err = check_credentials_with(&quick, &format!("{}/no", service.url), "w", PASSWORD)
            .unwrap_err();
        assert!(matches!(err, JobApiError::Refused(401)), "{err}");
        assert_eq!(service.requests().len(), 4, "a refusal is final");
        // Nothing listens on port 1; the root stays out of the message.
        let err =
            check_credentials_with(&quick, "http://127.0.0.1:1/x", "w", PASSWORD).unwrap_err();
        assert_eq!(
            err.to_string(),
            "GET <UWORKER_JOB_API_ROOT>/token: cannot connect, still after 3 attempts"
        );
    }
}
