//! The marks a build run puts on what it makes in the cloud, so that `sweep` can tell a
//! dead run's leftovers from a live run's resources (pure). A server and an image carry
//! them as metadata; a Nova key pair has no metadata and belongs to a user, not a project,
//! so its name carries them.
//!
//! - `uworker_image`, `uworker_target`: the definition and target (on images also
//!   `uworker_fingerprint`, what plan looks images up by).
//! - `uworker_run_id`: the run (`<GitHub run>-<attempt>`, or a local run's own ID).
//! - `uworker_deadline`: when the run will have ended, cleanup included (RFC 3339, UTC).
//!   A run never outlives it: the tool interrupts packer there.
//! - `uworker_alive_until`: a lease the running tool renews while packer runs; a server
//!   whose lease has not run out belongs to a live run, whatever its age.
//! - `uworker_floating_ip = "pool"`: the run's packer allocates a floating IP from a pool
//!   (and releases it); any other address on the server is someone's and only detached.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The image property the build sets to the fingerprint (`sha256:<hex>`).
pub const FINGERPRINT_PROPERTY: &str = "uworker_fingerprint";
/// The image property and server metadata naming the definition (`name` of image.toml).
pub const IMAGE_PROPERTY: &str = "uworker_image";
/// The image property and server metadata naming the target.
pub const TARGET_PROPERTY: &str = "uworker_target";
pub const RUN_ID_KEY: &str = "uworker_run_id";
pub const DEADLINE_KEY: &str = "uworker_deadline";
pub const ALIVE_UNTIL_KEY: &str = "uworker_alive_until";
pub const FLOATING_IP_KEY: &str = "uworker_floating_ip";
/// `FLOATING_IP_KEY`'s value on a server whose floating IP packer allocates from a pool.
pub const FLOATING_IP_FROM_POOL: &str = "pool";

/// How many heartbeat periods a lease lasts: one missed renewal is not death.
pub const LEASE_PERIODS: u32 = 3;

/// The first word of the name of every key pair this tool makes.
pub const KEYPAIR_PREFIX: &str = "uworker-image";

/// A moment as the marks write it: RFC 3339, UTC, whole seconds.
pub fn stamp(moment: SystemTime) -> String {
    humantime::format_rfc3339_seconds(moment).to_string()
}

/// A mark's moment; None when it is not one (then it is never trusted).
pub fn parse_stamp(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
}

/// What one run's key pair name says: whose it is and until when its run may live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypairMarks {
    pub definition: String,
    pub target: String,
    pub run_id: String,
    pub deadline: SystemTime,
}

impl KeypairMarks {
    /// `uworker-image <definition> <target> <run> <deadline, Unix seconds>`. Words are
    /// separated by spaces, the one separator Nova allows in a key pair name (at its base
    /// microversion: letters, digits, `_`, `-` and space) that no definition, target or
    /// run name holds. A dot in the definition's name, which Nova refuses, becomes a
    /// space too: the definition is whatever lies between the first word and the last three.
    pub fn name(&self) -> String {
        let seconds = self
            .deadline
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!(
            "{KEYPAIR_PREFIX} {} {} {} {seconds}",
            self.definition.replace('.', " "),
            self.target,
            self.run_id
        )
    }

    /// The marks of a key pair this tool named; None for anyone else's key pair.
    pub fn parse(name: &str) -> Option<KeypairMarks> {
        let words: Vec<&str> = name.split(' ').collect();
        let [prefix, definition @ .., target, run_id, seconds] = &words[..] else {
            return None;
        };
        if *prefix != KEYPAIR_PREFIX
            || definition.is_empty()
            || [target, run_id].iter().any(|w| w.is_empty())
            || definition.iter().any(|w| w.is_empty())
        {
            return None;
        }
        let seconds: u64 = seconds.parse().ok()?;
        Some(KeypairMarks {
            definition: definition.join("."),
            target: target.to_string(),
            run_id: run_id.to_string(),
            deadline: UNIX_EPOCH + Duration::from_secs(seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(definition: &str) -> KeypairMarks {
        KeypairMarks {
            definition: definition.into(),
            target: "smog_2".into(),
            run_id: "1234-2".into(),
            deadline: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    #[test]
    fn a_key_pair_name_carries_every_mark_and_reads_back() {
        let m = marks("uworker");
        assert_eq!(m.name(), "uworker-image uworker smog_2 1234-2 1800000000");
        assert_eq!(KeypairMarks::parse(&m.name()), Some(m));
        // A dot (which Nova refuses in a name) survives the round trip.
        let dotted = marks("odin.worker-v2");
        assert_eq!(
            dotted.name(),
            "uworker-image odin worker-v2 smog_2 1234-2 1800000000"
        );
        assert!(dotted
            .name()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_- ".contains(&b)));
        assert_eq!(KeypairMarks::parse(&dotted.name()), Some(dotted));
    }

    #[test]
    fn other_key_pairs_are_not_read_as_ours() {
        for name in [
            "packer_6571b0a4-3b29-4e0a-9fa6-1f6d10e0b6c1",
            "uworker-image",
            "uworker-image uworker smog 42",
            "uworker-image  smog 42 1800000000",
            "uworker-image uworker smog 42 soon",
            "uworker-image-x uworker smog 42 1800000000",
            "mine uworker smog 42 1800000000",
        ] {
            assert_eq!(KeypairMarks::parse(name), None, "{name}");
        }
    }

    #[test]
    fn stamps_are_utc_seconds_and_read_back() {
        let moment = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(stamp(moment), "2027-01-15T08:00:00Z");
        assert_eq!(parse_stamp(&stamp(moment)), Some(moment));
        assert_eq!(parse_stamp("tomorrow"), None);
    }
}
