//! Which old images of a definition to delete (pure): per target, the newest `keep`
//! active images stay; protected and deactivated images, the newest active image of the
//! current fingerprint and images still being made (queued, saving, importing) are never
//! touched, nor the target's current image (its newest verified one) and the one a
//! rollback would return to (the second newest verified), whatever `keep` says. Older
//! images of the current fingerprint (rebuilt by `max_age`) age out like any other.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lifecycle;

/// An image of the definition as the decision sees it; the Glance edge fills it
/// (commands/prune.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// Glance's status: `active`, `queued`, `deactivated`, ...
    pub status: String,
    /// RFC 3339 in UTC, so text order is time order.
    pub created_at: String,
    pub protected: bool,
    /// Its target mark (`run_marks::TARGET_PROPERTY`).
    pub target: String,
    /// Its fingerprint mark (`run_marks::FINGERPRINT_PROPERTY`), if any.
    pub fingerprint: Option<String>,
    /// Its lifecycle status (`lifecycle::STATUS_PROPERTY`), if any.
    pub lifecycle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub name: String,
    pub target: String,
    pub created_at: String,
    pub delete: bool,
    pub reason: String,
}

const IN_PROGRESS: [&str; 4] = ["queued", "saving", "importing", "uploading"];

/// Glance's status of an image an operator took out of use, often to investigate it:
/// prune leaves it to them, however old it is.
const DEACTIVATED: &str = "deactivated";
const DEACTIVATED_REASON: &str =
    "deactivated (an operator's hold: reactivate or delete it by hand)";

/// `images` are the definition's images (any order); `current` maps a target to its
/// current fingerprint.
pub fn decide(images: &[Image], keep: usize, current: &BTreeMap<String, String>) -> Vec<Decision> {
    let mut by_target: BTreeMap<String, Vec<&Image>> = BTreeMap::new();
    for image in images {
        by_target
            .entry(image.target.clone())
            .or_default()
            .push(image);
    }
    let mut decisions = Vec::new();
    for (target, mut list) in by_target {
        // Newest first; created_at is RFC 3339 in UTC, so text order is time order.
        list.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        let mut kept_active = 0;
        let mut current_seen = false;
        let lifecycle_roles = lifecycle_roles(&list);
        for image in list {
            let fingerprint = image.fingerprint.as_deref();
            let is_current = !current_seen
                && image.status == "active"
                && fingerprint.is_some()
                && current.get(&target).map(String::as_str) == fingerprint;
            let (delete, reason) = if image.protected {
                (false, "protected".to_string())
            } else if image.status == DEACTIVATED {
                (false, DEACTIVATED_REASON.to_string())
            } else if let Some(role) = lifecycle_roles.get(image.id.as_str()) {
                (false, role.to_string())
            } else if is_current {
                current_seen = true;
                (false, "image of the current fingerprint".to_string())
            } else if IN_PROGRESS.contains(&image.status.as_str()) {
                (false, format!("still {}", image.status))
            } else if image.status == "active" && kept_active < keep {
                kept_active += 1;
                (false, format!("among the newest {keep}"))
            } else {
                (
                    true,
                    format!("older than the newest {keep} ({})", image.status),
                )
            };
            decisions.push(Decision {
                id: image.id.clone(),
                name: image.name.clone(),
                target: target.clone(),
                created_at: image.created_at.clone(),
                delete,
                reason,
            });
        }
    }
    decisions
}

const CURRENT_REASON: &str = "the target's current image (its newest verified)";
const ROLLBACK_REASON: &str =
    "the image a rollback returns to (the target's second newest verified)";

/// The target's current image and the one a rollback would return to, by ID, with why
/// they stay.
fn lifecycle_roles<'a>(images: &[&'a Image]) -> BTreeMap<&'a str, &'static str> {
    let view: Vec<lifecycle::Image> = images
        .iter()
        .map(|i| lifecycle::Image {
            id: i.id.clone(),
            name: i.name.clone(),
            created_at: i.created_at.clone(),
            active: i.status == "active",
            status: i.lifecycle.clone(),
        })
        .collect();
    let verified = lifecycle::verified_newest_first(&view);
    let mut roles = BTreeMap::new();
    for (verified, reason) in verified.into_iter().zip([CURRENT_REASON, ROLLBACK_REASON]) {
        if let Some(image) = images.iter().find(|i| i.id == verified.id) {
            roles.insert(image.id.as_str(), reason);
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, created: &str, status: &str, protected: bool, fp: &str) -> Image {
        Image {
            id: id.into(),
            name: format!("img-t-{id}"),
            status: status.into(),
            created_at: created.into(),
            protected,
            target: "t".into(),
            fingerprint: Some(fp.into()),
            lifecycle: None,
        }
    }

    fn with_status(mut image: Image, status: &str) -> Image {
        image.lifecycle = Some(status.into());
        image
    }

    /// The current image and the rollback's target stay whatever `keep` says, even when
    /// newer images (failed, withdrawn, candidates, others' fingerprints) fill the count;
    /// a third verified image ages out like any other.
    #[test]
    fn the_current_image_and_the_rollback_target_are_never_deleted() {
        let t = |day: u32| format!("2026-01-{day:02}T00:00:00Z");
        let images = vec![
            with_status(image("v1", &t(1), "active", false, "sha256:1"), "verified"),
            with_status(image("v2", &t(2), "active", false, "sha256:2"), "verified"),
            with_status(image("v3", &t(3), "active", false, "sha256:3"), "verified"),
            with_status(image("w4", &t(4), "active", false, "sha256:4"), "withdrawn"),
            with_status(image("f5", &t(5), "active", false, "sha256:5"), "failed"),
            with_status(image("c6", &t(6), "active", false, "sha256:6"), "candidate"),
            image("n7", &t(7), "active", false, "sha256:7"),
        ];
        let current = BTreeMap::from([("t".to_string(), "sha256:other".to_string())]);
        for keep in [0, 1, 2] {
            let decisions = decide(&images, keep, &current);
            let verdict = |id: &str| {
                let d = decisions.iter().find(|d| d.id == id).unwrap();
                (d.delete, d.reason.as_str())
            };
            assert_eq!(verdict("v3"), (false, CURRENT_REASON), "keep {keep}");
            assert_eq!(verdict("v2"), (false, ROLLBACK_REASON), "keep {keep}");
            assert!(verdict("v1").0, "keep {keep}: {decisions:?}");
        }
        let deleted = |keep| -> Vec<String> {
            decide(&images, keep, &current)
                .into_iter()
                .filter(|d| d.delete)
                .map(|d| d.id)
                .collect()
        };
        assert_eq!(deleted(0), ["n7", "c6", "f5", "w4", "v1"]);
        assert_eq!(deleted(2), ["f5", "w4", "v1"]);
        // A verified image that is not active cannot be current: the next one is.
        let mut held = images.clone();
        held[2].status = "deactivated".into();
        let decisions = decide(&held, 0, &current);
        let reason = |id: &str| {
            decisions
                .iter()
                .find(|d| d.id == id)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason("v2"), CURRENT_REASON);
        assert_eq!(reason("v1"), ROLLBACK_REASON);
    }

    #[test]
    fn keeps_the_newest_active_and_spares_protected_current_and_unfinished() {
        let images = vec![
            image("a", "2026-01-01T00:00:01Z", "active", false, "sha256:a"),
            image("b", "2026-01-01T00:00:02Z", "active", true, "sha256:b"),
            image("c", "2026-01-01T00:00:03Z", "active", false, "sha256:c"),
            image("d", "2026-01-01T00:00:04Z", "killed", false, "sha256:d"),
            image("e", "2026-01-01T00:00:05Z", "active", false, "sha256:e"),
            image("f", "2026-01-01T00:00:06Z", "queued", false, "sha256:f"),
            image(
                "g",
                "2026-01-01T00:00:00Z",
                "active",
                false,
                "sha256:current",
            ),
        ];
        let current = BTreeMap::from([("t".to_string(), "sha256:current".to_string())]);
        let decisions = decide(&images, 1, &current);
        let deleted: Vec<&str> = decisions
            .iter()
            .filter(|d| d.delete)
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(deleted, ["d", "c", "a"]);
        let reason = |id: &str| {
            decisions
                .iter()
                .find(|d| d.id == id)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason("e"), "among the newest 1");
        assert_eq!(reason("b"), "protected");
        assert_eq!(reason("f"), "still queued");
        assert_eq!(reason("g"), "image of the current fingerprint");
    }

    /// An operator deactivates an image to investigate it: it stays, the newest or the
    /// oldest, however many active images there are, and the reason says so.
    #[test]
    fn a_deactivated_image_is_never_deleted() {
        let images = vec![
            image(
                "old",
                "2026-01-01T00:00:01Z",
                "deactivated",
                false,
                "sha256:a",
            ),
            image("mid", "2026-01-02T00:00:01Z", "active", false, "sha256:b"),
            image(
                "new",
                "2026-01-03T00:00:01Z",
                "deactivated",
                false,
                "sha256:c",
            ),
        ];
        let current = BTreeMap::from([("t".to_string(), "sha256:current".to_string())]);
        for keep in [0, 1, 5] {
            let decisions = decide(&images, keep, &current);
            for id in ["old", "new"] {
                let d = decisions.iter().find(|d| d.id == id).unwrap();
                assert!(!d.delete, "keep {keep}: {d:?}");
                assert!(d.reason.starts_with("deactivated"), "{d:?}");
            }
        }
        let decisions = decide(&images, 0, &current);
        assert!(decisions.iter().find(|d| d.id == "mid").unwrap().delete);
    }

    /// With max_age, one fingerprint has several images: the newest serves it, the
    /// older ones age out like any other image.
    #[test]
    fn only_the_newest_image_of_the_current_fingerprint_is_spared() {
        let current_fp = "sha256:current";
        let images = vec![
            image("old", "2026-01-01T00:00:01Z", "active", false, current_fp),
            image("mid", "2026-01-08T00:00:01Z", "active", false, current_fp),
            image("new", "2026-01-15T00:00:01Z", "active", false, current_fp),
            image("other", "2026-01-10T00:00:01Z", "active", false, "sha256:x"),
        ];
        let current = BTreeMap::from([("t".to_string(), current_fp.to_string())]);
        let decisions = decide(&images, 1, &current);
        let verdict = |id: &str| {
            let d = decisions.iter().find(|d| d.id == id).unwrap();
            (d.delete, d.reason.clone())
        };
        assert_eq!(
            verdict("new"),
            (false, "image of the current fingerprint".into())
        );
        assert_eq!(verdict("other"), (false, "among the newest 1".into()));
        assert!(verdict("mid").0 && verdict("old").0, "{decisions:?}");
    }
}
