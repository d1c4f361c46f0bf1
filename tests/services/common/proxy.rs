//! A loopback TCP proxy in front of a real service (a Glance), for what the network does
//! to an image's bytes on their way: flip one bit of an upload's body, or slow uploads
//! down so a test can stop one mid-stream. Only the bodies of `PUT .../file` requests are
//! touched; every other request and every answer passes as it is. One request a
//! connection (uWSGI closes each after its answer), each connection on threads of its own.
//!
//! A region whose catalog entry points at the proxy (`register_region`) puts it between
//! the tool and the Glance without the tool knowing: the catalog is the real Keystone's.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Flips the lowest bit of the upload body's byte at this offset.
    FlipBit { at: u64 },
    /// Lets an upload's body through at about this many bytes a second.
    Throttle { bytes_per_second: u64 },
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Upload body bytes that went through.
    pub uploaded: Arc<AtomicU64>,
    /// Bits flipped.
    pub flipped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (any free port) to `upstream` (`http://HOST:PORT`).
    pub fn start(upstream: &str, mode: Mode) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let uploaded = Arc::new(AtomicU64::new(0));
        let flipped = Arc::new(AtomicU64::new(0));
        let (s, u, f) = (stop.clone(), uploaded.clone(), flipped.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let (upstream, u, f) = (upstream.clone(), u.clone(), f.clone());
                        std::thread::spawn(move || relay(client, &upstream, mode, &u, &f));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Proxy {
            url,
            uploaded,
            flipped,
            stop,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn relay(
    mut client: TcpStream,
    upstream: &str,
    mode: Mode,
    uploaded: &AtomicU64,
    flipped: &AtomicU64,
) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    // Answers go back untouched.
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    // The request's head, as it came.
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let body_start = loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = server.shutdown(Shutdown::Both);
                let _ = back.join();
                return;
            }
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let line = String::from_utf8_lossy(&head[..head.iter().position(|&b| b == b'\r').unwrap_or(0)])
        .to_string();
    let upload = line.starts_with("PUT ") && line.contains("/file");
    let mut rest = head.split_off(body_start);
    if server.write_all(&head).is_err() {
        return;
    }
    let started = Instant::now();
    let mut offset = 0u64;
    loop {
        if upload {
            match mode {
                Mode::FlipBit { at } => {
                    if (offset..offset + rest.len() as u64).contains(&at) {
                        rest[(at - offset) as usize] ^= 1;
                        flipped.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Mode::Throttle { bytes_per_second } => {
                    let due = Duration::from_secs_f64(
                        (offset + rest.len() as u64) as f64 / bytes_per_second as f64,
                    );
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            uploaded.fetch_add(rest.len() as u64, Ordering::SeqCst);
        }
        offset += rest.len() as u64;
        if server.write_all(&rest).is_err() {
            break;
        }
        // Small reads while throttled, so the pace is even.
        let size = match mode {
            Mode::Throttle { .. } if upload => 16 * 1024,
            _ => buf.len(),
        };
        match client.read(&mut buf[..size]) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest = buf[..n].to_vec(),
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
    let _ = client.shutdown(Shutdown::Both);
}

/// Makes `region` of the suite's Keystone a region whose image service is at `url` (the
/// proxy), through the harness (`openstack.sh register`): a login after this sees it.
pub fn register_region(region: &str, url: &str) {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/openstack.sh");
    super::openstack::openrc();
    let out = Command::new(harness)
        .args(["register", region, "image", "glance", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "registering {region}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
