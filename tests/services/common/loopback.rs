//! One loopback HTTP/1.1 server for the tests' HTTP stand-ins (the job service, the fake
//! GitHub, a storage host): it binds a free port on a loopback address, reads each
//! request (one a connection, `Connection: close`) on a thread of its own, answers what a
//! handler says, and stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The target's path and query (empty without one).
    pub fn path_and_query(&self) -> (&str, &str) {
        self.target
            .split_once('?')
            .unwrap_or((self.target.as_str(), ""))
    }

    /// Basic-auth username and password, decoded.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let (user, password) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }
}

/// An answer: status, headers, body (`Content-Length` is added).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// With `Content-Type: application/json`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer::new(status, body).header("Content-Type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running server; it stops when dropped (or never, after `detach`).
pub struct Server {
    /// `http://IP:PORT`
    pub url: String,
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves on `ip` (a loopback address), on a free port.
    pub fn start(ip: &str, handler: impl Fn(Request) -> Answer + Send + Sync + 'static) -> Server {
        Server::start_knowing_url(ip, |_| handler)
    }

    /// `start`, with the handler `make` makes of the server's URL (for answers that
    /// point back at it).
    pub fn start_knowing_url<H>(ip: &str, make: impl FnOnce(&str) -> H) -> Server
    where
        H: Fn(Request) -> Answer + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((ip, 0)).expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://{ip}:{port}");
        let handler = make(&url);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handler = Arc::new(handler);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let handler = Arc::clone(&handler);
                        std::thread::spawn(move || serve(stream, &*handler));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Server {
            url,
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Lets it serve until the test binary ends (for a stand-in its clones share).
    pub fn detach(mut self) {
        self.thread = None;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &(impl Fn(Request) -> Answer + ?Sized)) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let answer = handler(request);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\n",
        answer.status,
        reason(answer.status)
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", answer.body.len()));
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&answer.body);
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim_end().is_empty() {
            break;
        }
        let (name, value) = header.trim_end().split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// The reason phrase of the statuses the stand-ins answer.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        _ => "Error",
    }
}
