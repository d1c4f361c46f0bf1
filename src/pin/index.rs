//! The edge of pinning a requirement or a URL: HTTP through `crate::http` (the tool's
//! client, `retry::send`'s policy). A PEP 691 JSON project page of the index
//! (`Accept: application/vnd.pypi.simple.v1+json`), and the sha256 of a URL's content,
//! streamed (constant memory, whatever its size).

use std::time::Duration;

use reqwest::blocking::{Client, Response};

use super::requirement::ProjectPage;
use super::{HttpSaid, PinError};
use crate::fingerprint::HashWriter;
use crate::http::retry::{self, Failure, Retry};
use crate::http::Redirects;

/// PyPI's, when neither the definition nor the environment names another.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple/";

/// PEP 691's JSON form, preferred; the HTML form is not read.
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json";

/// How long one project page may take, and one artifact's content.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
const CONTENT_TIMEOUT: Duration = Duration::from_secs(600);

/// The most of a project page that is read (PyPI's largest are a few MB).
const PAGE_CAP: u64 = 64 << 20;

/// `host[:port]` of a URL, for messages (never its userinfo or path).
pub fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| "an unreadable URL".into())
}

/// A URL without its userinfo, for messages.
fn shown(url: &str) -> String {
    crate::userinfo::strip(url).value
}

fn client(timeout: Duration) -> Result<Client, PinError> {
    crate::http::client(Redirects::AnyHostWithoutAuthorization, timeout)
        .map_err(|source| PinError::HttpClient { source })
}

/// GET `url` with `retry::send`; an answer other than 2xx is `HttpSaid`.
fn get(client: &Client, url: &str, accept: &str, label: &str) -> Result<Response, HttpSaid> {
    let answer = retry::send(&Retry::default(), label, || {
        client.get(url).header("Accept", accept).send()
    })
    .map_err(|failure| match failure {
        Failure::Exhausted { last, attempts } => HttpSaid(format!(
            "HTTP {}, still after {attempts} attempts",
            last.status().as_u16()
        )),
        Failure::TooLong { last, wait, .. } => HttpSaid(format!(
            "HTTP {} asking to wait {} s",
            last.status().as_u16(),
            wait.as_secs()
        )),
        Failure::Transport { error, .. } => HttpSaid(retry::transport_reason(&error).to_string()),
    })?;
    if !answer.status().is_success() {
        return Err(HttpSaid(format!("HTTP {}", answer.status().as_u16())));
    }
    Ok(answer)
}

/// The project page of `project` on the index at `index_url`, and the page's URL (file
/// URLs may be relative to it).
pub fn project_page(index_url: &str, project: &str) -> Result<(ProjectPage, String), PinError> {
    let base = if index_url.ends_with('/') {
        index_url.to_string()
    } else {
        format!("{index_url}/")
    };
    let page_url = format!("{base}{project}/");
    let host = host_of(&page_url);
    let unreachable = |source: HttpSaid| PinError::Index {
        url: shown(&page_url),
        host: host.clone(),
        source,
    };
    let client = client(PAGE_TIMEOUT)?;
    let label = format!("GET {host} project page {project}");
    let answer = get(&client, &page_url, ACCEPT, &label).map_err(unreachable)?;
    let json = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if !json {
        return Err(unreachable(HttpSaid(
            "the answer is not PEP 691 JSON (Content-Type application/vnd.pypi.simple.v1+json): is index_url a simple index that speaks JSON?".into(),
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(answer, PAGE_CAP), &mut bytes)
        .map_err(|e| unreachable(HttpSaid(format!("reading the page: {}", e.kind()))))?;
    let page = serde_json::from_slice(&bytes).map_err(|source| PinError::BadPage {
        url: shown(&page_url),
        host: host.clone(),
        source,
    })?;
    Ok((page, page_url))
}

/// `url` resolved against the page it was found on (PEP 691 allows relative URLs).
pub fn resolve(page_url: &str, url: &str) -> Result<String, PinError> {
    reqwest::Url::parse(page_url)
        .and_then(|base| base.join(url))
        .map(String::from)
        .map_err(|_| PinError::Index {
            url: shown(page_url),
            host: host_of(page_url),
            source: HttpSaid(format!("its file URL `{}` does not resolve", shown(url))),
        })
}

/// The sha256 (lower-case hex) of what `url` serves, read in a stream.
pub fn content_sha256(url: &str) -> Result<String, PinError> {
    let host = host_of(url);
    let failed = |source: HttpSaid| PinError::Content {
        url: shown(url),
        host: host.clone(),
        source,
    };
    let client = client(CONTENT_TIMEOUT)?;
    let label = format!("GET {host} content to hash");
    let mut answer = get(&client, url, "*/*", &label).map_err(failed)?;
    let mut hasher = HashWriter::default();
    std::io::copy(&mut answer, &mut hasher)
        .map_err(|e| failed(HttpSaid(format!("reading the content: {}", e.kind()))))?;
    Ok(hasher.hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{Answer, Server};

    #[test]
    fn a_json_page_is_read_and_relative_urls_resolve_against_it() {
        let server = Server::start("127.0.0.1", |request: &crate::loopback::Request| {
            match request.path.as_str() {
            "/simple/uworker/" => Answer::new(
                200,
                r#"{"meta":{"api-version":"1.1"},"files":[{"filename":"uworker-1.0.tar.gz","url":"../../files/uworker-1.0.tar.gz","hashes":{}}]}"#,
            )
            .header("Content-Type", "application/vnd.pypi.simple.v1+json"),
            "/files/uworker-1.0.tar.gz" => Answer::new(200, "abc"),
            "/html/uworker/" => Answer::new(200, "<html></html>").header("Content-Type", "text/html"),
            _ => Answer::new(404, "no"),
        }
        });
        let index = format!("{}/simple", server.url);
        let (page, page_url) = project_page(&index, "uworker").unwrap();
        assert_eq!(page_url, format!("{}/simple/uworker/", server.url));
        let url = resolve(&page_url, &page.files[0].url).unwrap();
        assert_eq!(url, format!("{}/files/uworker-1.0.tar.gz", server.url));
        // sha256("abc")
        assert_eq!(
            content_sha256(&url).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let html = project_page(&format!("{}/html", server.url), "uworker").unwrap_err();
        assert!(html.to_string().contains("127.0.0.1"), "{html}");
        assert!(crate::error_chain::Chain(&html)
            .to_string()
            .contains("PEP 691"));
        let missing = project_page(&index, "nothing").unwrap_err();
        assert!(
            crate::error_chain::Chain(&missing)
                .to_string()
                .contains("HTTP 404"),
            "{missing}"
        );
        let gone = content_sha256(&format!("{}/files/gone.whl", server.url)).unwrap_err();
        assert!(matches!(gone, PinError::Content { .. }), "{gone:?}");
    }

    #[test]
    fn hosts_are_named_without_userinfo() {
        assert_eq!(host_of("https://u:p@h.example:8443/x"), "h.example:8443");
        assert_eq!(host_of("https://pypi.org/simple/"), "pypi.org");
        assert_eq!(shown("https://u:p@h.example/x"), "https://h.example/x");
    }
}
