//! Credentials stay with their origin: the HTTP clients that send a token or a password
//! follow a redirect only to the same scheme, host and port, and refuse any other with an
//! error that names both origins (reqwest would follow it and, for X-Auth-Token, send the
//! token along).

use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;
use thiserror::Error;

/// How many same-origin redirects one request may take (reqwest's own default).
pub const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RedirectRefused {
    #[error("refused a redirect from {from} to another origin, {to}: credentials are only sent to the origin they are for")]
    CrossOrigin { from: String, to: String },
    #[error("refused a redirect from {from}: more than {MAX_REDIRECTS} in a row")]
    TooMany { from: String },
}

/// `scheme://host:port`, the port spelled out even when it is the scheme's default.
pub fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// The decision for one redirect from `previous` to `next`.
pub fn check(previous: &Url, next: &Url, hops: usize) -> Result<(), RedirectRefused> {
    let (from, to) = (origin(previous), origin(next));
    if from != to {
        return Err(RedirectRefused::CrossOrigin { from, to });
    }
    if hops > MAX_REDIRECTS {
        return Err(RedirectRefused::TooMany { from });
    }
    Ok(())
}

/// The redirect policy of every client that carries credentials.
pub fn same_origin_only() -> Policy {
    Policy::custom(|attempt: Attempt| {
        let previous = attempt.previous().last().cloned();
        let hops = attempt.previous().len();
        match previous.map(|p| check(&p, attempt.url(), hops)) {
            Some(Err(refused)) => attempt.error(refused),
            _ => attempt.follow(),
        }
    })
}

/// The refusal inside a reqwest error, if that is what stopped the request.
pub fn refusal(error: &reqwest::Error) -> Option<RedirectRefused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RedirectRefused>() {
            return Some(refused.clone());
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn only_the_same_scheme_host_and_port_is_the_same_origin() {
        let from = url("http://127.0.0.1:9292/v2/images");
        assert_eq!(
            check(&from, &url("http://127.0.0.1:9292/v2/other?x=1"), 1),
            Ok(())
        );
        for other in [
            "http://127.0.0.2:9292/v2/images",
            "http://127.0.0.1:9293/v2/images",
            "https://127.0.0.1:9292/v2/images",
            "http://localhost:9292/v2/images",
        ] {
            assert!(
                matches!(
                    check(&from, &url(other), 1),
                    Err(RedirectRefused::CrossOrigin { .. })
                ),
                "{other}"
            );
        }
        // The default port, written or not, is the same origin.
        assert_eq!(
            check(
                &url("https://k.example/v3"),
                &url("https://k.example:443/v3/"),
                1
            ),
            Ok(())
        );
        assert_eq!(
            check(&from, &url("http://127.0.0.2:80/"), 1)
                .unwrap_err()
                .to_string(),
            "refused a redirect from http://127.0.0.1:9292 to another origin, http://127.0.0.2:80: credentials are only sent to the origin they are for"
        );
        assert!(matches!(
            check(&from, &from, MAX_REDIRECTS + 1),
            Err(RedirectRefused::TooMany { .. })
        ));
    }
}
