//! A job-service stand-in on loopback: answers the worker's first calls (`GET {root}/token`
//! with basic auth -> `{"token": ...}`, then job fetches with the token: 204, no job) and
//! records every request, basic-auth credentials decoded. Stops when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;

pub const TOKEN: &str = "standin-token-1";
/// The path prefix of the service root (UWORKER_JOB_API_ROOT ends with it).
pub const ROOT_PATH: &str = "/uservice/api/root";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path below the root, e.g. `/token`.
    pub path: String,
    /// Basic-auth username and password, decoded.
    pub basic_auth: Option<(String, String)>,
    /// Other headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct JobService {
    pub address: String,
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JobService {
    /// Listens on `address` (a loopback address), on a free port.
    pub fn start(address: &str) -> JobService {
        let listener = TcpListener::bind((address, 0)).expect("bind the job service stand-in");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(request) = serve(stream) {
                            log.lock().unwrap().push(request);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        JobService {
            address: address.to_string(),
            port,
            requests,
            stop,
            thread: Some(thread),
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

impl Drop for JobService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream) -> Option<Request> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut basic_auth = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim_end().is_empty() {
            break;
        }
        let (name, value) = header.trim_end().split_once(':')?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
        if name == "authorization" {
            basic_auth = value.strip_prefix("Basic ").and_then(decode_basic);
        } else {
            headers.push((name, value));
        }
    }
    let path = target
        .strip_prefix(ROOT_PATH)
        .unwrap_or(&target)
        .to_string();
    let (status, body) = match (method.as_str(), path.as_str()) {
        ("GET", "/token") if basic_auth.is_some() => {
            ("200 OK", format!("{{\"token\": \"{TOKEN}\"}}"))
        }
        ("GET", "/token") => ("401 Unauthorized", String::new()),
        _ => ("204 No Content", String::new()),
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Some(Request {
        method,
        path,
        basic_auth,
        headers,
    })
}

fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Decodes the stand-in worker's `X-Standin-Env` header: base64 of a JSON object of every
/// UWORKER_* variable it saw.
pub fn decode_env(header: &str) -> serde_json::Map<String, serde_json::Value> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header)
        .expect("base64");
    serde_json::from_slice(&raw).expect("a JSON object")
}
