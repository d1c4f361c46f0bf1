//! Where an image stands in its life (pure): what `build` marks it, what `verify`,
//! `promote` and `rollback` move it to, and what consumers select on.
//!
//! candidate (built, not yet verified) -> verified (booted in the target's cloud, its
//! checks passed) -> withdrawn (rolled back); or candidate -> failed. The current image
//! of a target is its newest verified image: one Glance query
//! (`uworker_target=T`, `uworker_status=verified`, newest `created_at` first).

use std::fmt;

/// The image property that holds the image's [`Status`].
pub const STATUS_PROPERTY: &str = "uworker_status";

/// An image's place in its lifecycle, as the [`STATUS_PROPERTY`] spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Built and marked; not (yet) verified. Never current.
    Candidate,
    /// Booted in the target's cloud and passed every check: may be current.
    Verified,
    /// Failed its verification: never current, never copied.
    Failed,
    /// Verified once, then rolled back: never current until promoted again.
    Withdrawn,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Candidate,
        Status::Verified,
        Status::Failed,
        Status::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Candidate => "candidate",
            Status::Verified => "verified",
            Status::Failed => "failed",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// The status a property value names; None for anything else (an image built before
    /// the lifecycle existed has no such property at all).
    pub fn parse(value: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_nothing_else_is_one() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(Status::parse("Verified"), None);
        assert_eq!(Status::parse(""), None);
    }
}
