//! The one way the tool calls an HTTP service (Keystone, Glance, Nova, Neutron, the job
//! API, GitHub): a blocking client made by `client` (our user agent, bounded timeouts, a
//! redirect rule chosen by the caller), every request sent through `retry::send` (one
//! policy: backoff, `Retry-After`, GitHub's rate-limit headers, a cap on the wait).
//!
//! How to add a service call: make the client once with `client(Redirects::..., timeout)`,
//! then `retry::send(&retry, "METHOD what", || client.get(url).send())`, and turn its
//! `retry::Failure` into the module's own error (`retry::transport_reason` names a
//! transport failure without the URL, which may be a secret).

pub mod redirects;
pub mod retry;

use std::time::Duration;

use reqwest::blocking::Client;

/// Every client's user agent (GitHub refuses requests without one).
pub const USER_AGENT: &str = concat!("uworker-image/", env!("CARGO_PKG_VERSION"));

/// How long connecting may take, for every service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a redirect may lead, which depends on where the caller's credentials travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Only within the origin: the credentials are in headers reqwest does not know to
    /// drop (`X-Auth-Token`), or the origin itself is a secret (the job API's root).
    SameOrigin,
    /// Anywhere, but a hop to another host or port goes without `Authorization` (reqwest
    /// drops it): GitHub's asset downloads redirect to storage elsewhere.
    AnyHostWithoutAuthorization,
}

/// What bounds a request's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// The whole request, answer read included: every API call.
    Total(Duration),
    /// A transfer of any length (an image's bytes): no bound on the whole, but the
    /// connection fails when data sent stays unacknowledged for `stall`. Each request
    /// bounds itself (`RequestBuilder::timeout`: a download's reads, an upload's deadline).
    Transfer { stall: Duration },
}

impl From<Duration> for Timeout {
    fn from(total: Duration) -> Timeout {
        Timeout::Total(total)
    }
}

/// A client with the tool's user agent and timeouts (see `Timeout`; a `Duration` bounds
/// a whole request).
pub fn client(redirects: Redirects, timeout: impl Into<Timeout>) -> Result<Client, reqwest::Error> {
    let policy = match redirects {
        Redirects::SameOrigin => redirects::same_origin_only(),
        Redirects::AnyHostWithoutAuthorization => {
            reqwest::redirect::Policy::limited(redirects::MAX_REDIRECTS)
        }
    };
    let builder = Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(policy);
    match timeout.into() {
        Timeout::Total(total) => builder.timeout(total),
        Timeout::Transfer { stall } => unacknowledged_limit(builder.timeout(None), stall),
    }
    .build()
}

/// A connection whose sent data stays unacknowledged for `stall` fails (Linux's
/// `TCP_USER_TIMEOUT`; elsewhere only keep-alive probes notice a dead peer).
fn unacknowledged_limit(
    builder: reqwest::blocking::ClientBuilder,
    stall: Duration,
) -> reqwest::blocking::ClientBuilder {
    let builder = builder.tcp_keepalive(stall);
    #[cfg(target_os = "linux")]
    let builder = builder.tcp_user_timeout(stall);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{Answer, Server};

    #[test]
    fn a_hop_to_another_host_goes_without_authorization_or_not_at_all() {
        let elsewhere = Server::start("127.0.0.2", |_| Answer::new(200, "there"));
        let target = format!("{}/file", elsewhere.url);
        let home = Server::start("127.0.0.1", move |request| match request.path.as_str() {
            "/away" => Answer::new(302, "").header("Location", &target),
            "/moved" => Answer::new(302, "").header("Location", "/here"),
            _ => Answer::new(200, "here"),
        });
        let get = |redirects, path: &str| {
            client(redirects, Duration::from_secs(5))
                .unwrap()
                .get(format!("{}{path}", home.url))
                .header("Authorization", "Bearer secret")
                .send()
        };
        // Followed, and the token stays home.
        let away = get(Redirects::AnyHostWithoutAuthorization, "/away").unwrap();
        assert_eq!(away.text().unwrap(), "there");
        let arrived = elsewhere.requests();
        assert_eq!(arrived.len(), 1);
        assert_eq!(arrived[0].header("authorization"), None);
        assert_eq!(arrived[0].header("user-agent"), Some(USER_AGENT));
        // Refused: nothing more reaches the other host.
        let refused = get(Redirects::SameOrigin, "/away").unwrap_err();
        assert!(redirects::refusal(&refused).is_some(), "{refused}");
        assert_eq!(elsewhere.requests().len(), 1);
        // Within the origin both follow, Authorization and all.
        for redirects in [
            Redirects::SameOrigin,
            Redirects::AnyHostWithoutAuthorization,
        ] {
            assert_eq!(get(redirects, "/moved").unwrap().text().unwrap(), "here");
        }
        let here: Vec<_> = home
            .requests()
            .into_iter()
            .filter(|r| r.path == "/here")
            .collect();
        assert_eq!(here.len(), 2);
        assert!(here
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer secret")));
    }
}
