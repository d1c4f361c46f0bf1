//! A job-service stand-in on loopback: answers the worker's first calls (`GET {root}/token`
//! with basic auth -> `{"token": ...}`, then job fetches with the token: 204, no job) and
//! records every request, basic-auth credentials decoded (on common::loopback). Stops
//! when dropped.

use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::loopback::{self, Answer, Server};

pub const TOKEN: &str = "standin-token-1";
/// The path prefix of the service root (UWORKER_JOB_API_ROOT ends with it).
pub const ROOT_PATH: &str = "/uservice/api/root";

/// A request as the job service saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path below the root, e.g. `/token`.
    pub path: String,
    /// Basic-auth username and password, decoded.
    pub basic_auth: Option<(String, String)>,
    http: loopback::Request,
}

impl Request {
    /// A header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.http.header(name)
    }
}

pub struct JobService {
    pub address: String,
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    _server: Server,
}

impl JobService {
    /// Listens on `address` (a loopback address), on a free port.
    pub fn start(address: &str) -> JobService {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let server = Server::start(address, move |request| {
            let (request, answer) = answer(request);
            log.lock().unwrap().push(request);
            answer
        });
        JobService {
            address: address.to_string(),
            port: server.port,
            requests,
            _server: server,
        }
    }

    /// The value for UWORKER_JOB_API_ROOT.
    pub fn root(&self) -> String {
        format!("http://{}:{}{ROOT_PATH}", self.address, self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// The request as the tests look at it, and the job service's answer to it.
fn answer(http: loopback::Request) -> (Request, Answer) {
    let request = Request {
        path: http
            .target
            .strip_prefix(ROOT_PATH)
            .unwrap_or(&http.target)
            .to_string(),
        basic_auth: http.basic_auth(),
        http,
    };
    let answer = match (request.http.method.as_str(), request.path.as_str()) {
        ("GET", "/token") if request.basic_auth.is_some() => {
            Answer::json(200, format!("{{\"token\": \"{TOKEN}\"}}"))
        }
        ("GET", "/token") => Answer::json(401, ""),
        _ => Answer::json(204, ""),
    };
    (request, answer)
}

/// Decodes the stand-in worker's `X-Standin-Env` header: base64 of a JSON object of every
/// UWORKER_* variable it saw.
pub fn decode_env(header: &str) -> serde_json::Map<String, serde_json::Value> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header)
        .expect("base64");
    serde_json::from_slice(&raw).expect("a JSON object")
}
