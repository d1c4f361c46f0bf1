//! One Glance image copied to another Glance (another region or cloud), byte for byte:
//! `GET {source}/v2/images/{id}/file` streamed into `PUT {copy}/v2/images/{new}/file`
//! through a reader that hashes what passes (`transfer::Tally`), says how far it is
//! (`transfer::Progress`), and fails the transfer when told to stop or at the deadline.
//! Memory stays constant: reqwest reads the reader 8 KiB at a time into a bounded channel.
//!
//! A failed transfer is tried again from the start with a new image, the half-made one
//! deleted first; once the data is in, what the copy's Glance computed is checked against
//! the source (`transfer::verdict`), and a copy that is not the source's bytes is deleted.
//! On every path that does not return the copy, the copy is deleted.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::Body;
use reqwest::Method;
use serde_json::{json, Value};
use thiserror::Error;

use super::client::{Cloud, OpenStackError};
use super::glance::{Glance, Image};
use crate::error_chain::Chain;
use crate::transfer::{self, Facts, Mismatch, Progress, Streamed, Tally};

/// Whether to stop now (the caller's interrupt flag): checked before every read.
pub type Stop = Arc<dyn Fn() -> bool + Send + Sync>;
/// Where progress lines and warnings go.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// What to copy where, and what the copy is called and carries.
pub struct Job<'a> {
    pub source: &'a Cloud,
    /// Read and checked by the caller: active, with data.
    pub image: &'a Image,
    pub destination: &'a Cloud,
    pub name: String,
    /// None: Glance's default (private).
    pub visibility: Option<String>,
    /// Set at creation, over the source's carried properties: the run marks among them,
    /// so that `sweep` finds a copy a dead run left half made.
    pub properties: Vec<(String, String)>,
    pub tags: Vec<String>,
}

/// How long and how often.
#[derive(Debug, Clone)]
pub struct Limits {
    pub deadline: Instant,
    /// Transfers in all, the first included.
    pub attempts: u32,
    /// A connection that moves nothing for this long fails (and the transfer is retried).
    pub stall: Duration,
    /// A progress line at least this often while bytes move.
    pub progress_every: Duration,
}

impl Limits {
    pub fn until(deadline: Instant) -> Limits {
        Limits {
            deadline,
            attempts: 3,
            stall: Duration::from_secs(120),
            progress_every: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Error)]
pub enum CopyError {
    #[error("image {id} has no data to copy (status {status}, size {size:?}): copy an active image that holds its bytes (a volume-backed snapshot holds none)")]
    NoData {
        id: String,
        status: String,
        size: Option<u64>,
    },
    #[error("creating the copy of image {id}")]
    Create {
        id: String,
        #[source]
        error: Box<OpenStackError>,
    },
    #[error("reading image {id} from its Glance")]
    Read {
        id: String,
        #[source]
        error: Box<OpenStackError>,
    },
    #[error("copying image {id} failed {attempts} time(s); each half-made copy was deleted")]
    Transfer {
        id: String,
        attempts: u32,
        #[source]
        error: Box<OpenStackError>,
    },
    #[error("copying image {id}: stopped by a signal; the half-made copy was deleted")]
    Interrupted { id: String },
    #[error("copying image {id}: the run's deadline passed after {bytes} bytes; the half-made copy was deleted")]
    Deadline { id: String, bytes: u64 },
    #[error("the copy {copy} of image {id} is not its bytes ({mismatch}); the copy was deleted")]
    Mismatch {
        id: String,
        copy: String,
        /// Boxed: every Result of this type carries its size.
        mismatch: Box<Mismatch>,
    },
    #[error("the copy {copy} of image {id} did not become active (status {status})")]
    NotActive {
        id: String,
        copy: String,
        status: String,
    },
    #[error("checking the copy {copy} of image {id}")]
    Check {
        id: String,
        copy: String,
        #[source]
        error: Box<OpenStackError>,
    },
}

impl crate::exit::Coded for CopyError {
    /// A copy that is not the source's bytes, or does not become active, is a failure
    /// (1); a cloud that fails the calls is External (3); a stop is 130.
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            CopyError::Mismatch { .. }
            | CopyError::NotActive { .. }
            | CopyError::Deadline { .. } => Code::Failed,
            CopyError::NoData { .. } => Code::BadInput,
            CopyError::Interrupted { .. } => Code::Interrupted,
            CopyError::Create { .. }
            | CopyError::Read { .. }
            | CopyError::Transfer { .. }
            | CopyError::Check { .. } => Code::External,
        }
    }
}

/// What a Glance image says of its data.
pub fn facts(image: &Image) -> Facts {
    Facts {
        algorithm: image.property("os_hash_algo").map(str::to_string),
        value: image.property("os_hash_value").map(str::to_string),
        size: image.properties.get("size").and_then(Value::as_u64),
    }
}

/// Why a transfer stopped short of its end on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    Stopped,
    Deadline,
}

/// What the reader shares with the one who reads the result.
struct Shared {
    tally: Option<Tally>,
    halt: Option<Halt>,
}

/// The source's bytes on their way to the copy: hashed, counted, reported, stoppable.
struct Passing<R> {
    inner: R,
    shared: Arc<Mutex<Shared>>,
    progress: Progress,
    stop: Stop,
    say: Say,
    deadline: Instant,
}

impl<R: Read> Read for Passing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let halt = if (self.stop)() {
            Some(Halt::Stopped)
        } else if Instant::now() >= self.deadline {
            Some(Halt::Deadline)
        } else {
            None
        };
        if let Some(halt) = halt {
            lock(&self.shared).halt = Some(halt);
            return Err(std::io::Error::other(format!("transfer halted: {halt:?}")));
        }
        let n = self.inner.read(buf)?;
        let bytes = {
            let mut shared = lock(&self.shared);
            let tally = shared
                .tally
                .as_mut()
                .expect("the tally lives until the end");
            tally.update(&buf[..n]);
            tally.bytes
        };
        if let Some(line) = self.progress.due(bytes, Instant::now()) {
            (self.say)(&format!("copy: {line}"));
        }
        Ok(n)
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// How one transfer ended.
enum Attempt {
    Done(Streamed),
    Halted(Halt, u64),
    /// Worth another try from the start.
    Failed(OpenStackError),
}

/// Copies `job.image` to `job.destination`: the new image, active and proven to hold the
/// source's bytes. Whatever else happens, no copy is left behind (a copy whose deletion
/// fails is named in a warning; it carries the run marks for `sweep`).
pub fn copy(job: &Job, limits: &Limits, stop: Stop, say: Say) -> Result<Image, CopyError> {
    let id = job.image.id.clone();
    let source_facts = facts(job.image);
    let size = match source_facts.size {
        Some(size) if job.image.status == "active" && size > 0 => size,
        size => {
            return Err(CopyError::NoData {
                id,
                status: job.image.status.clone(),
                size,
            })
        }
    };
    let source = job
        .source
        .for_transfers(limits.stall)
        .map_err(|error| CopyError::Read {
            id: id.clone(),
            error: Box::new(error),
        })?;
    let destination = job
        .destination
        .for_transfers(limits.stall)
        .map_err(|error| CopyError::Create {
            id: id.clone(),
            error: Box::new(error),
        })?;
    let glance_of = |cloud| Glance::new(cloud);
    let delete = |copy: &str| {
        let deleted = glance_of(job.destination).and_then(|g| g.delete(copy));
        if let Err(e) = deleted {
            say(&format!(
                "copy: warning: deleting the half-made copy {copy} failed ({}); `sweep` removes it once the run's deadline has passed",
                Chain(&e)
            ));
        }
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let copy = create(job).map_err(|error| CopyError::Create {
            id: id.clone(),
            error: Box::new(error),
        })?;
        say(&format!(
            "copy: image {id} ({size} bytes) to {} as {}, attempt {attempt} of {}",
            job.destination.region().unwrap_or("the cloud's region"),
            copy.id,
            limits.attempts
        ));
        let outcome = transfer(
            &source,
            &destination,
            job,
            &copy.id,
            size,
            limits,
            &stop,
            &say,
        );
        let streamed = match outcome {
            Ok(Attempt::Done(streamed)) => streamed,
            Ok(Attempt::Halted(halt, bytes)) => {
                delete(&copy.id);
                return Err(match halt {
                    Halt::Stopped => CopyError::Interrupted { id },
                    Halt::Deadline => CopyError::Deadline { id, bytes },
                });
            }
            Ok(Attempt::Failed(error)) if attempt < limits.attempts => {
                say(&format!(
                    "copy: attempt {attempt} failed ({}); deleting {} and starting again",
                    Chain(&error),
                    copy.id
                ));
                delete(&copy.id);
                continue;
            }
            Ok(Attempt::Failed(error)) => {
                delete(&copy.id);
                return Err(CopyError::Transfer {
                    id,
                    attempts: attempt,
                    error: Box::new(error),
                });
            }
            Err(error) => {
                delete(&copy.id);
                return Err(CopyError::Read {
                    id,
                    error: Box::new(error),
                });
            }
        };
        return match check(job, &copy.id, &source_facts, &streamed, limits) {
            Ok(image) => Ok(image),
            Err(error) => {
                delete(&copy.id);
                Err(error)
            }
        };
    }
}

/// The destination's image record: the source's formats, sizes and carried properties,
/// the copy's name, visibility, properties and tags.
fn create(job: &Job) -> Result<Image, OpenStackError> {
    let image = job.image;
    let mut body = json!({
        "name": job.name,
        "disk_format": image.properties.get("disk_format").cloned().unwrap_or(Value::Null),
        "container_format": image.properties.get("container_format").cloned().unwrap_or(Value::Null),
        "min_disk": image.properties.get("min_disk").and_then(Value::as_u64).unwrap_or(0),
        "min_ram": image.properties.get("min_ram").and_then(Value::as_u64).unwrap_or(0),
        "tags": job.tags,
    });
    if let Some(visibility) = &job.visibility {
        body["visibility"] = json!(visibility);
    }
    for (key, value) in transfer::carried_properties(&image.properties)
        .into_iter()
        .chain(job.properties.iter().cloned())
    {
        body[key] = json!(value);
    }
    Glance::new(job.destination)?.create(&body)
}

/// One transfer: the source's data read and sent into `copy`. Err: the source could not
/// be read at all (its calls were retried already).
#[allow(clippy::too_many_arguments)]
fn transfer(
    source: &Cloud,
    destination: &Cloud,
    job: &Job,
    copy: &str,
    size: u64,
    limits: &Limits,
    stop: &Stop,
    say: &Say,
) -> Result<Attempt, OpenStackError> {
    let read_url = Glance::new(source)?.file_url(&job.image.id);
    let stall = limits.stall;
    // The download's reads each wait `stall` at most (reqwest's per-request timeout).
    let response = source.call(Method::GET, &read_url, |r| r.timeout(stall))?;
    let shared = Arc::new(Mutex::new(Shared {
        tally: Some(Tally::new(job.image.property("os_hash_algo"))),
        halt: None,
    }));
    let reader = Passing {
        inner: response,
        shared: Arc::clone(&shared),
        progress: Progress::new(limits.progress_every, Some(size), Instant::now()),
        stop: Arc::clone(stop),
        say: Arc::clone(say),
        deadline: limits.deadline,
    };
    let write_url = Glance::new(destination)?.file_url(copy);
    let left = limits.deadline.saturating_duration_since(Instant::now());
    let sent = destination.send_once(Method::PUT, &write_url, |r| {
        r.header("Content-Type", "application/octet-stream")
            // The whole upload ends by the deadline.
            .timeout(left.max(Duration::from_millis(1)))
            .body(Body::sized(reader, size))
    });
    let mut shared = lock(&shared);
    let tally = shared.tally.take().expect("taken once");
    if let Some(halt) = shared.halt {
        return Ok(Attempt::Halted(halt, tally.bytes));
    }
    if Instant::now() >= limits.deadline {
        return Ok(Attempt::Halted(Halt::Deadline, tally.bytes));
    }
    Ok(match sent {
        Ok(_) => Attempt::Done(tally.finish()),
        Err(error) => Attempt::Failed(error),
    })
}

/// The copy, once active, against the source: `transfer::verdict`.
fn check(
    job: &Job,
    copy: &str,
    source: &Facts,
    streamed: &Streamed,
    limits: &Limits,
) -> Result<Image, CopyError> {
    let id = &job.image.id;
    let checking = |error| CopyError::Check {
        id: id.clone(),
        copy: copy.to_string(),
        error: Box::new(error),
    };
    let glance = Glance::new(job.destination).map_err(checking)?;
    // Glance activates an image as its upload ends; a store may take a moment more.
    let mut image = glance.get(copy).map_err(checking)?;
    let waited = Instant::now();
    while image.status != "active"
        && waited.elapsed() < Duration::from_secs(60)
        && Instant::now() < limits.deadline
        && matches!(image.status.as_str(), "saving" | "queued" | "importing")
    {
        std::thread::sleep(Duration::from_millis(500));
        image = glance.get(copy).map_err(checking)?;
    }
    if image.status != "active" {
        return Err(CopyError::NotActive {
            id: id.clone(),
            copy: copy.to_string(),
            status: image.status,
        });
    }
    transfer::verdict(source, streamed, &facts(&image)).map_err(|mismatch| {
        CopyError::Mismatch {
            id: id.clone(),
            copy: copy.to_string(),
            mismatch: Box::new(mismatch),
        }
    })?;
    Ok(image)
}
