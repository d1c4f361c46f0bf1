//! The pure parts of copying an image's bytes from one Glance to another
//! (`openstack::image_copy` does the I/O): the hashes taken while the bytes pass, the
//! progress line's cadence, the verdict on the copy Glance made, and which of the source's
//! properties a copy takes along.
//!
//! Glance computes `os_hash_value` itself (`os_hash_algo`, SHA-512 by default) and does
//! not check a hash it is given: the copy is proven by comparing what the destination
//! computed with what the source says, or, when their algorithms differ, with what was
//! computed here while the bytes passed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use sha2::digest::DynDigest;

/// Glance's default `os_hash_algo` (`[DEFAULT] hashing_algorithm`).
pub const DEFAULT_ALGORITHM: &str = "sha512";

/// A hasher for an algorithm as Glance names it (Python's hashlib names); None for one
/// this tool cannot compute.
fn hasher(algorithm: &str) -> Option<Box<dyn DynDigest + Send>> {
    Some(match algorithm {
        "sha224" => Box::new(sha2::Sha224::default()),
        "sha256" => Box::new(sha2::Sha256::default()),
        "sha384" => Box::new(sha2::Sha384::default()),
        "sha512" => Box::new(sha2::Sha512::default()),
        _ => return None,
    })
}

/// The bytes that passed and their hashes, in every algorithm asked for that this tool
/// can compute.
pub struct Tally {
    pub bytes: u64,
    hashers: Vec<(String, Box<dyn DynDigest + Send>)>,
}

impl Tally {
    /// Hashes in SHA-512 and in each of `algorithms` (the source's), once each.
    pub fn new<'a>(algorithms: impl IntoIterator<Item = &'a str>) -> Tally {
        let mut hashers: Vec<(String, Box<dyn DynDigest + Send>)> = Vec::new();
        for algorithm in std::iter::once(DEFAULT_ALGORITHM).chain(algorithms) {
            if hashers.iter().any(|(name, _)| name == algorithm) {
                continue;
            }
            if let Some(h) = hasher(algorithm) {
                hashers.push((algorithm.to_string(), h));
            }
        }
        Tally { bytes: 0, hashers }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for (_, h) in &mut self.hashers {
            h.update(data);
        }
    }

    /// The hex digests by algorithm.
    pub fn finish(self) -> Streamed {
        Streamed {
            bytes: self.bytes,
            hashes: self
                .hashers
                .into_iter()
                .map(|(name, h)| (name, hex::encode(h.finalize())))
                .collect(),
        }
    }
}

/// What passed through: its length and its hex digests by algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    pub bytes: u64,
    pub hashes: BTreeMap<String, String>,
}

/// What a Glance says of an image's data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub algorithm: Option<String>,
    pub value: Option<String>,
    pub size: Option<u64>,
}

/// Why a copy is not the source's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The source read short or long.
    Read { read: u64, size: u64 },
    /// The destination holds another number of bytes.
    Size { source: u64, copy: u64 },
    /// A side says no size or no hash.
    Untold {
        side: &'static str,
        what: &'static str,
    },
    /// Two hashes in `algorithm` that differ; `of` says which two.
    Hash {
        of: &'static str,
        algorithm: String,
        expected: String,
        got: String,
    },
    /// The destination hashed in an algorithm this tool cannot compute, unlike the source.
    Unverifiable { algorithm: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Read { read, size } => write!(
                f,
                "read {read} bytes of a source of {size} bytes"
            ),
            Mismatch::Size { source, copy } => {
                write!(f, "the copy holds {copy} bytes, the source {source}")
            }
            Mismatch::Untold { side, what } => write!(f, "the {side}'s Glance tells no {what}"),
            Mismatch::Hash {
                of,
                algorithm,
                expected,
                got,
            } => write!(
                f,
                "{of}: {algorithm} {} where {} was expected",
                short(got),
                short(expected)
            ),
            Mismatch::Unverifiable { algorithm } => write!(
                f,
                "the copy's Glance hashes in {algorithm}, which this tool cannot compute, and the source's in another"
            ),
        }
    }
}

/// The first 16 hex digits, enough to tell two digests apart in a message.
fn short(hex: &str) -> String {
    hex.chars().take(16).collect::<String>() + "..."
}

/// The verdict on a copy: the destination's size equals the source's and the bytes read,
/// and its hash equals the source's (same algorithm) or the one computed while streaming
/// (algorithms differ). The bytes read must also hash to the source's own value whenever
/// its algorithm is one this tool computes.
pub fn verdict(source: &Facts, streamed: &Streamed, copy: &Facts) -> Result<(), Mismatch> {
    let untold = |side, what| Mismatch::Untold { side, what };
    let size = source.size.ok_or(untold("source", "size"))?;
    if streamed.bytes != size {
        return Err(Mismatch::Read {
            read: streamed.bytes,
            size,
        });
    }
    let copy_size = copy.size.ok_or(untold("copy", "size"))?;
    if copy_size != size {
        return Err(Mismatch::Size {
            source: size,
            copy: copy_size,
        });
    }
    let (Some(source_algorithm), Some(source_value)) = (&source.algorithm, &source.value) else {
        return Err(untold("source", "hash"));
    };
    let (Some(copy_algorithm), Some(copy_value)) = (&copy.algorithm, &copy.value) else {
        return Err(untold("copy", "hash"));
    };
    let compare = |of, algorithm: &str, expected: &str, got: &str| {
        if expected.eq_ignore_ascii_case(got) {
            Ok(())
        } else {
            Err(Mismatch::Hash {
                of,
                algorithm: algorithm.to_string(),
                expected: expected.to_lowercase(),
                got: got.to_lowercase(),
            })
        }
    };
    if let Some(read) = streamed.hashes.get(source_algorithm) {
        compare(
            "the bytes read against the source's hash",
            source_algorithm,
            source_value,
            read,
        )?;
    }
    if copy_algorithm == source_algorithm {
        return compare(
            "the copy's hash against the source's",
            source_algorithm,
            source_value,
            copy_value,
        );
    }
    if !streamed.hashes.contains_key(source_algorithm) {
        // Neither side's value can be tied to the bytes read.
        return Err(Mismatch::Unverifiable {
            algorithm: source_algorithm.clone(),
        });
    }
    match streamed.hashes.get(copy_algorithm) {
        Some(read) => compare(
            "the copy's hash against the bytes sent",
            copy_algorithm,
            read,
            copy_value,
        ),
        None => Err(Mismatch::Unverifiable {
            algorithm: copy_algorithm.clone(),
        }),
    }
}

/// When to say how far a transfer is: a line at the first chance after each `every`.
pub struct Progress {
    every: Duration,
    started: Instant,
    last: Instant,
    total: Option<u64>,
}

impl Progress {
    pub fn new(every: Duration, total: Option<u64>, now: Instant) -> Progress {
        Progress {
            every,
            started: now,
            last: now,
            total,
        }
    }

    /// The line to print now that `bytes` have passed, if one is due.
    pub fn due(&mut self, bytes: u64, now: Instant) -> Option<String> {
        if now.duration_since(self.last) < self.every {
            return None;
        }
        self.last = now;
        Some(self.line(bytes, now))
    }

    /// `1.5 GiB of 4.0 GiB (37%), 112.4 MB/s`.
    pub fn line(&self, bytes: u64, now: Instant) -> String {
        let seconds = now.duration_since(self.started).as_secs_f64();
        let rate = if seconds > 0.0 {
            bytes as f64 / seconds / 1e6
        } else {
            0.0
        };
        match self.total {
            Some(total) if total > 0 => format!(
                "{} of {} ({}%), {rate:.1} MB/s",
                size(bytes),
                size(total),
                bytes.saturating_mul(100) / total
            ),
            _ => format!("{}, {rate:.1} MB/s", size(bytes)),
        }
    }
}

/// Bytes in MiB or GiB, one decimal.
fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// The source's properties a copy takes along: its custom string properties (what boots
/// it: `os_distro`, `hw_*`...), but not Glance's own fields, not the tool's marks (the copy
/// gets its own) and not what names things of the source's region (its server, its user).
pub fn carried_properties(
    properties: &BTreeMap<String, serde_json::Value>,
) -> Vec<(String, String)> {
    const GLANCE_OWN: [&str; 22] = [
        "checksum",
        "container_format",
        "created_at",
        "direct_url",
        "disk_format",
        "file",
        "locations",
        "min_disk",
        "min_ram",
        "os_hash_algo",
        "os_hash_value",
        "os_hidden",
        "schema",
        "self",
        "size",
        "status",
        "stores",
        "updated_at",
        "virtual_size",
        "instance_uuid",
        "image_location",
        "user_id",
    ];
    const REGION_OWN_PREFIXES: [&str; 4] = ["owner_", "base_image_ref", "boot_roles", "uworker_"];
    properties
        .iter()
        .filter(|(key, _)| {
            !GLANCE_OWN.contains(&key.as_str())
                && !REGION_OWN_PREFIXES.iter().any(|p| key.starts_with(p))
        })
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn sha(algorithm: &str, data: &[u8]) -> String {
        match algorithm {
            "sha256" => hex::encode(sha2::Sha256::digest(data)),
            "sha512" => hex::encode(sha2::Sha512::digest(data)),
            _ => unreachable!(),
        }
    }

    fn facts(algorithm: &str, value: &str, size: u64) -> Facts {
        Facts {
            algorithm: Some(algorithm.into()),
            value: Some(value.into()),
            size: Some(size),
        }
    }

    fn streamed(data: &[u8], algorithms: &[&str]) -> Streamed {
        let mut tally = Tally::new(algorithms.iter().copied());
        for chunk in data.chunks(3) {
            tally.update(chunk);
        }
        tally.finish()
    }

    const DATA: &[u8] = b"an image, byte for byte";

    #[test]
    fn the_tally_hashes_in_sha512_and_the_sources_algorithm_whatever_the_chunks() {
        let s = streamed(DATA, &["sha256"]);
        assert_eq!(s.bytes, DATA.len() as u64);
        assert_eq!(s.hashes["sha512"], sha("sha512", DATA));
        assert_eq!(s.hashes["sha256"], sha("sha256", DATA));
        assert_eq!(s.hashes.len(), 2);
        // An algorithm it cannot compute is left out; sha512 is never doubled.
        let s = streamed(DATA, &["sha3_512", "sha512"]);
        assert_eq!(s.hashes.keys().collect::<Vec<_>>(), ["sha512"]);
    }

    #[test]
    fn same_algorithm_the_copy_must_hash_as_the_source() {
        let n = DATA.len() as u64;
        let source = facts("sha512", &sha("sha512", DATA), n);
        let read = streamed(DATA, &["sha512"]);
        assert_eq!(verdict(&source, &read, &source.clone()), Ok(()));
        // Upper-case hex is the same value.
        let upper = facts("sha512", &sha("sha512", DATA).to_uppercase(), n);
        assert_eq!(verdict(&source, &read, &upper), Ok(()));
        // A bit flipped after the tool read it: the copy's own hash gives it away.
        let mut flipped = DATA.to_vec();
        flipped[5] ^= 1;
        let copy = facts("sha512", &sha("sha512", &flipped), n);
        let Err(Mismatch::Hash {
            of, got, expected, ..
        }) = verdict(&source, &read, &copy)
        else {
            panic!("a flipped bit passed");
        };
        assert_eq!(of, "the copy's hash against the source's");
        assert_eq!(
            (got, expected),
            (sha("sha512", &flipped), sha("sha512", DATA))
        );
        // A bit flipped before the tool read it: the bytes read are not the source's.
        let read_flipped = streamed(&flipped, &["sha512"]);
        let Err(Mismatch::Hash { of, .. }) = verdict(&source, &read_flipped, &copy) else {
            panic!("a bit flipped on the way in passed");
        };
        assert_eq!(of, "the bytes read against the source's hash");
    }

    #[test]
    fn other_algorithms_the_copy_must_hash_as_the_bytes_sent() {
        let n = DATA.len() as u64;
        let source = facts("sha256", &sha("sha256", DATA), n);
        let read = streamed(DATA, &["sha256"]);
        let copy = facts("sha512", &sha("sha512", DATA), n);
        assert_eq!(verdict(&source, &read, &copy), Ok(()));
        let mut flipped = DATA.to_vec();
        flipped[0] ^= 0x80;
        let bad = facts("sha512", &sha("sha512", &flipped), n);
        assert!(matches!(
            verdict(&source, &read, &bad),
            Err(Mismatch::Hash {
                of: "the copy's hash against the bytes sent",
                ..
            })
        ));
        // The copy's algorithm is one the tool cannot compute.
        let odd = facts("sha3_512", "00", n);
        assert_eq!(
            verdict(&source, &read, &odd),
            Err(Mismatch::Unverifiable {
                algorithm: "sha3_512".into()
            })
        );
        // Nor the source's: nothing ties the bytes read to it.
        let source = facts("sha3_512", "00", n);
        let read = streamed(DATA, &["sha3_512"]);
        assert_eq!(
            verdict(&source, &read, &copy),
            Err(Mismatch::Unverifiable {
                algorithm: "sha3_512".into()
            })
        );
        // The same unknown algorithm on both sides: Glance's two values are compared.
        assert_eq!(verdict(&source, &read, &source.clone()), Ok(()));
    }

    #[test]
    fn sizes_and_missing_facts_are_mismatches() {
        let n = DATA.len() as u64;
        let source = facts("sha512", &sha("sha512", DATA), n);
        let read = streamed(DATA, &[]);
        let short = streamed(&DATA[1..], &[]);
        assert_eq!(
            verdict(&source, &short, &source.clone()),
            Err(Mismatch::Read {
                read: n - 1,
                size: n
            })
        );
        let copy = facts("sha512", &sha("sha512", DATA), n + 1);
        assert_eq!(
            verdict(&source, &read, &copy),
            Err(Mismatch::Size {
                source: n,
                copy: n + 1
            })
        );
        let no_hash = Facts {
            size: Some(n),
            ..Facts::default()
        };
        assert_eq!(
            verdict(&source, &read, &no_hash),
            Err(Mismatch::Untold {
                side: "copy",
                what: "hash"
            })
        );
        assert_eq!(
            verdict(&no_hash, &read, &source),
            Err(Mismatch::Untold {
                side: "source",
                what: "hash"
            })
        );
        assert_eq!(
            verdict(&Facts::default(), &read, &source),
            Err(Mismatch::Untold {
                side: "source",
                what: "size"
            })
        );
        let no_size = Facts {
            size: None,
            ..source.clone()
        };
        assert_eq!(
            verdict(&source, &read, &no_size),
            Err(Mismatch::Untold {
                side: "copy",
                what: "size"
            })
        );
    }

    #[test]
    fn a_progress_line_comes_once_per_interval_with_rate_and_percent() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Progress::new(s(30), Some(4 << 30), t0);
        assert_eq!(p.due(1, t0 + s(29)), None);
        let line = p.due(3 << 30, t0 + s(30)).expect("due at 30 s");
        assert_eq!(line, "3.0 GiB of 4.0 GiB (75%), 107.4 MB/s");
        // The next one 30 s after that line, not after the start.
        assert_eq!(p.due(3 << 30, t0 + s(59)), None);
        assert!(p.due(4 << 30, t0 + s(60)).is_some());
        assert_eq!(p.due(4 << 30, t0 + s(61)), None);
        // Without a size: bytes and rate only.
        let p = Progress::new(s(1), None, t0);
        assert_eq!(p.line(512 << 20, t0 + s(2)), "512.0 MiB, 268.4 MB/s");
        assert_eq!(p.line(0, t0), "0.0 MiB, 0.0 MB/s");
    }

    #[test]
    fn a_copy_takes_the_sources_custom_properties_but_not_glances_or_the_marks() {
        let properties: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "os_distro": "debian", "os_version": "12", "hw_disk_bus": "scsi",
                "os_hash_value": "ab", "os_hash_algo": "sha512", "size": 5, "checksum": "x",
                "uworker_fingerprint": "sha256:1", "uworker_status": "verified",
                "instance_uuid": "i", "owner_project_name": "p", "base_image_ref": "b",
                "image_type": "image", "direct_url": "file://x"
            }))
            .unwrap();
        let carried = carried_properties(&properties);
        let keys: Vec<&str> = carried.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["hw_disk_bus", "image_type", "os_distro", "os_version"]
        );
    }

    #[test]
    fn every_sha2_glance_may_name_is_computed() {
        let s = streamed(DATA, &["sha224", "sha256", "sha384"]);
        assert_eq!(s.hashes["sha224"], hex::encode(sha2::Sha224::digest(DATA)));
        assert_eq!(s.hashes["sha384"], hex::encode(sha2::Sha384::digest(DATA)));
        assert_eq!(s.hashes.len(), 4);
    }

    #[test]
    fn a_mismatch_says_what_differs() {
        let texts = [
            (Mismatch::Read { read: 1, size: 2 }, "read 1 bytes of a source of 2 bytes"),
            (
                Mismatch::Size { source: 2, copy: 3 },
                "the copy holds 3 bytes, the source 2",
            ),
            (
                Mismatch::Untold {
                    side: "copy",
                    what: "hash",
                },
                "the copy's Glance tells no hash",
            ),
            (
                Mismatch::Hash {
                    of: "the copy's hash against the source's",
                    algorithm: "sha512".into(),
                    expected: "0123456789abcdef0123".into(),
                    got: "fedcba9876543210fedc".into(),
                },
                "the copy's hash against the source's: sha512 fedcba9876543210... where 0123456789abcdef... was expected",
            ),
            (
                Mismatch::Unverifiable {
                    algorithm: "sha3_512".into(),
                },
                "the copy's Glance hashes in sha3_512, which this tool cannot compute, and the source's in another",
            ),
        ];
        for (mismatch, text) in texts {
            assert_eq!(mismatch.to_string(), text);
        }
    }
}
