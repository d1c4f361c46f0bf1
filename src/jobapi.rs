//! The job service's API, only as far as pre-flight needs it: `GET {root}/token` with
//! HTTP basic auth answers `{"token": "..."}` when the worker's credentials are good.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum JobApiError {
    #[error("the job service refused UWORKER_JOB_API_USERNAME/UWORKER_JOB_API_PASSWORD (GET <UWORKER_JOB_API_ROOT>/token: HTTP {0})")]
    Refused(u16),
    #[error("GET <UWORKER_JOB_API_ROOT>/token: {0}")]
    Unreachable(String),
    #[error("GET <UWORKER_JOB_API_ROOT>/token answered without a token")]
    NoToken,
}

/// Checks the worker's job-API credentials the way the worker itself logs in. The root
/// URL is a worker value, treated as a secret, so messages do not repeat it.
pub fn check_credentials(root: &str, username: &str, password: &str) -> Result<(), JobApiError> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| JobApiError::Unreachable(e.to_string()))?;
    let url = format!("{}/token", root.trim_end_matches('/'));
    let response = client
        .get(&url)
        .basic_auth(username, Some(password))
        .header("Accept", "application/json")
        .send()
        .map_err(|e| {
            JobApiError::Unreachable(if e.is_timeout() {
                "timed out".into()
            } else {
                "cannot connect".into()
            })
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
