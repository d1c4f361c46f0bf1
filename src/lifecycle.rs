//! Where an image stands in its life (pure): what `build` marks it, what `verify`,
//! `promote` and `rollback` move it to, and what consumers select on.
//!
//! candidate (built, not yet verified) -> verified (booted in the target's cloud, its
//! checks passed) -> withdrawn (rolled back); or candidate -> failed. The current image
//! of a target is its newest verified image: one Glance query
//! (`uworker_target=T`, `uworker_status=verified`, newest `created_at` first).
//!
//! Below the vocabulary, the selections over one target's images: its current image,
//! what `rollback` withdraws and returns to, what `promote` changes, and whether the image
//! of a fingerprint serves it (`plan`). The Glance edge (src/commands/) fills [`Image`]
//! and applies what these decide.

use std::fmt;

use thiserror::Error;

use crate::exit::{Code, Coded};

/// The image property that holds the image's [`Status`].
pub const STATUS_PROPERTY: &str = "uworker_status";

/// The image property a build sets to [`VERIFICATION_DISABLED`] when its definition turned
/// verification off (`[verify] enabled = false`): the image is `verified` unbooted.
pub const VERIFICATION_PROPERTY: &str = "uworker_verification";
pub const VERIFICATION_DISABLED: &str = "disabled";

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

/// When an image was withdrawn (RFC 3339, UTC), set by `rollback` and `promote`.
pub const WITHDRAWN_AT_PROPERTY: &str = "uworker_withdrawn_at";
/// Who withdrew it (the GitHub actor, else the local user).
pub const WITHDRAWN_BY_PROPERTY: &str = "uworker_withdrawn_by";
/// Why (`--reason`, or the promotion that superseded it).
pub const WITHDRAWN_REASON_PROPERTY: &str = "uworker_withdrawn_reason";
/// When `promote` made it current (RFC 3339, UTC).
pub const PROMOTED_AT_PROPERTY: &str = "uworker_promoted_at";

/// Glance's limit on a property's value.
pub const MAX_PROPERTY_CHARS: usize = 255;

/// One image of one target (definition, target and owner already checked), as the
/// selections see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// RFC 3339 in UTC, so text order is time order.
    pub created_at: String,
    /// Glance's status is `active` (only an active image can be current).
    pub active: bool,
    /// [`STATUS_PROPERTY`]'s value; None when the image has none (built before the
    /// lifecycle existed).
    pub status: Option<String>,
}

impl Image {
    /// The status its property names; None when it has none or an unknown value.
    pub fn lifecycle(&self) -> Option<Status> {
        self.status.as_deref().and_then(Status::parse)
    }

    fn is_verified(&self) -> bool {
        self.active && self.lifecycle() == Some(Status::Verified)
    }

    /// Newer than `other` in Glance's order (`created_at:desc,id:desc`), which the
    /// consumers' query follows.
    fn newer_than(&self, other: &Image) -> bool {
        (&self.created_at, &self.id) > (&other.created_at, &other.id)
    }
}

/// The target's active verified images, newest first: the first is current, the second
/// is what a rollback returns to.
pub fn verified_newest_first(images: &[Image]) -> Vec<&Image> {
    let mut verified: Vec<&Image> = images.iter().filter(|i| i.is_verified()).collect();
    verified.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    verified
}

/// The target's current image: its newest active verified image.
pub fn current(images: &[Image]) -> Option<&Image> {
    verified_newest_first(images).into_iter().next()
}

/// What a rollback does: `withdraw` the current image, so `to` becomes current.
#[derive(Debug, PartialEq, Eq)]
pub struct Rollback<'a> {
    pub withdraw: &'a Image,
    pub to: &'a Image,
}

/// The rollback of `target`: refused without a current image, or without a previous
/// verified one to return to (a target with no current image serves nothing at all).
pub fn rollback<'a>(target: &str, images: &'a [Image]) -> Result<Rollback<'a>, LifecycleError> {
    match verified_newest_first(images)[..] {
        [] => Err(LifecycleError::NoCurrent {
            target: target.to_string(),
        }),
        [only] => Err(LifecycleError::NoPrevious {
            target: target.to_string(),
            current: only.id.clone(),
        }),
        [withdraw, to, ..] => Ok(Rollback { withdraw, to }),
    }
}

/// What a promotion does: mark `image` verified (unless it is), then withdraw `withdraw`
/// (every verified image newer than it), oldest first, so the current image stays the
/// old one until the last withdrawal and then is `image`, never one in between.
#[derive(Debug, PartialEq, Eq)]
pub struct Promotion<'a> {
    pub image: &'a Image,
    /// Its status before: verified, withdrawn, or none (adopted).
    pub was: Option<Status>,
    pub withdraw: Vec<&'a Image>,
}

impl Promotion<'_> {
    /// Already current: nothing to change.
    pub fn is_noop(&self) -> bool {
        self.was == Some(Status::Verified) && self.withdraw.is_empty()
    }
}

/// The promotion of `wanted` (an image ID or name) among `target`'s images. Only an
/// active image that was verified once (verified or withdrawn) may become current: a
/// candidate or failed image is refused (promote does not skip verification), and an
/// image without a status (built before the lifecycle) only with `adopt`.
pub fn promote<'a>(
    target: &str,
    images: &'a [Image],
    wanted: &str,
    adopt: bool,
) -> Result<Promotion<'a>, LifecycleError> {
    let by_id = images.iter().find(|i| i.id == wanted);
    let image = match by_id {
        Some(image) => image,
        None => {
            let named: Vec<&Image> = images.iter().filter(|i| i.name == wanted).collect();
            match named[..] {
                [image] => image,
                [] => {
                    return Err(LifecycleError::NotOfTarget {
                        image: wanted.to_string(),
                        target: target.to_string(),
                    })
                }
                _ => {
                    return Err(LifecycleError::AmbiguousName {
                        name: wanted.to_string(),
                        ids: named.iter().map(|i| i.id.clone()).collect(),
                    })
                }
            }
        }
    };
    if !image.active {
        return Err(LifecycleError::NotActive {
            image: image.id.clone(),
        });
    }
    let was = image.lifecycle();
    match (was, image.status.as_deref()) {
        (Some(Status::Verified | Status::Withdrawn), _) => {}
        (None, None) if adopt => {}
        (None, None) => {
            return Err(LifecycleError::NoStatus {
                image: image.id.clone(),
            })
        }
        (Some(status @ (Status::Candidate | Status::Failed)), _) => {
            return Err(LifecycleError::Unverified {
                image: image.id.clone(),
                status,
            })
        }
        (None, Some(value)) => {
            return Err(LifecycleError::UnknownStatus {
                image: image.id.clone(),
                value: value.to_string(),
            })
        }
    }
    let mut withdraw: Vec<&Image> = verified_newest_first(images)
        .into_iter()
        .filter(|i| i.newer_than(image))
        .collect();
    withdraw.reverse();
    Ok(Promotion {
        image,
        was,
        withdraw,
    })
}

/// Whether the image of a fingerprint serves it, by its status (`plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// Verified, or without a status (built by a release before the lifecycle).
    Serves,
    /// Withdrawn (rolled back) or failed: it does not serve, and the same inputs are not
    /// built again unless one changes or `--force` says so. `since`: when it was withdrawn.
    Held {
        status: Status,
        since: Option<String>,
    },
    /// A candidate (its run ended before its verification) or a status this release does
    /// not know: it does not serve, and a build is planned.
    Unverified { value: String },
}

/// How the image of a fingerprint serves, from its status property and withdrawal time.
pub fn serving(status: Option<&str>, withdrawn_at: Option<&str>) -> Serving {
    match status.map(|value| (value, Status::parse(value))) {
        None | Some((_, Some(Status::Verified))) => Serving::Serves,
        Some((_, Some(status @ (Status::Withdrawn | Status::Failed)))) => Serving::Held {
            status,
            since: withdrawn_at.map(str::to_string),
        },
        Some((value, _)) => Serving::Unverified {
            value: value.to_string(),
        },
    }
}

/// `--reason` as a property value: Glance takes at most 255 characters.
pub fn check_reason(reason: &str) -> Result<(), LifecycleError> {
    let chars = reason.chars().count();
    if chars > MAX_PROPERTY_CHARS {
        return Err(LifecycleError::ReasonTooLong { chars });
    }
    Ok(())
}

/// Why a rollback or promotion is refused; nothing was changed.
#[derive(Debug, Error)]
pub enum LifecycleError {
    #[error(
        "target `{target}` has no verified image: there is no current image to roll back \
         (promote one with `promote IMAGE`, or build one)"
    )]
    NoCurrent { target: String },
    #[error(
        "image {current} is the only verified image of target `{target}`: a rollback has no \
         previous verified image to return to (promote an older image with `promote IMAGE`, \
         or build a new one)"
    )]
    NoPrevious { target: String, current: String },
    #[error(
        "no image `{image}` of target `{target}` in this project (an image ID or name, of \
         this definition and target, owned by the credentials' project)"
    )]
    NotOfTarget { image: String, target: String },
    #[error("several images of the target are named `{name}` ({}): give the image's ID", ids.join(", "))]
    AmbiguousName { name: String, ids: Vec<String> },
    #[error("image {image} is not active in Glance: only an active image can be current")]
    NotActive { image: String },
    #[error(
        "image {image} is `{status}`: promote does not skip verification (only a verified or \
         withdrawn image can become current; build again to verify)"
    )]
    Unverified { image: String, status: Status },
    #[error(
        "image {image} has no `uworker_status` (built before the image lifecycle, never \
         verified): `promote --adopt` makes it current anyway"
    )]
    NoStatus { image: String },
    #[error(
        "image {image} has `uworker_status` = `{value}`, not a status this release knows \
         (candidate, verified, failed, withdrawn): refusing to promote it"
    )]
    UnknownStatus { image: String, value: String },
    #[error("--reason is {chars} characters long: Glance keeps at most 255 in a property")]
    ReasonTooLong { chars: usize },
    #[error(
        "--reason holds the value of a secret: it would be stored in Glance; say it otherwise"
    )]
    ReasonHoldsSecret,
}

impl Coded for LifecycleError {
    /// The request does not fit the target's images (or is too long): the user's to change.
    fn code(&self) -> Code {
        match self {
            LifecycleError::NoCurrent { .. }
            | LifecycleError::NoPrevious { .. }
            | LifecycleError::NotOfTarget { .. }
            | LifecycleError::AmbiguousName { .. }
            | LifecycleError::NotActive { .. }
            | LifecycleError::Unverified { .. }
            | LifecycleError::NoStatus { .. }
            | LifecycleError::UnknownStatus { .. }
            | LifecycleError::ReasonTooLong { .. }
            | LifecycleError::ReasonHoldsSecret => Code::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, created: &str, status: Option<&str>) -> Image {
        Image {
            id: id.into(),
            name: format!("img-t-{id}"),
            created_at: created.into(),
            active: true,
            status: status.map(str::to_string),
        }
    }

    /// A target's history: an image from before the lifecycle, verified ones, a withdrawn
    /// one, a failed and a candidate (the newest of all) and a verified image not active.
    fn history() -> Vec<Image> {
        let mut deactivated = image("v5", "2026-01-09T00:00:00Z", Some("verified"));
        deactivated.active = false;
        vec![
            image("old", "2026-01-01T00:00:00Z", None),
            image("v1", "2026-01-02T00:00:00Z", Some("verified")),
            image("v2", "2026-01-03T00:00:00Z", Some("verified")),
            image("w3", "2026-01-04T00:00:00Z", Some("withdrawn")),
            image("v4", "2026-01-05T00:00:00Z", Some("verified")),
            image("f6", "2026-01-06T00:00:00Z", Some("failed")),
            image("c7", "2026-01-07T00:00:00Z", Some("candidate")),
            deactivated,
        ]
    }

    fn ids<'a>(images: impl IntoIterator<Item = &'a Image>) -> Vec<&'a str> {
        images.into_iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn the_current_image_is_the_newest_active_verified_one() {
        let images = history();
        assert_eq!(current(&images).map(|i| i.id.as_str()), Some("v4"));
        assert_eq!(ids(verified_newest_first(&images)), ["v4", "v2", "v1"]);
        // One second holds two images: Glance's order (created_at, then id) decides.
        let same = [
            image("a", "2026-01-01T00:00:00Z", Some("verified")),
            image("b", "2026-01-01T00:00:00Z", Some("verified")),
        ];
        assert_eq!(current(&same).map(|i| i.id.as_str()), Some("b"));
        assert_eq!(current(&[image("x", "2026", None)]), None);
    }

    #[test]
    fn a_rollback_withdraws_the_current_image_and_returns_to_the_previous_verified_one() {
        let images = history();
        let rollback = rollback("t", &images).unwrap();
        assert_eq!(
            (rollback.withdraw.id.as_str(), rollback.to.id.as_str()),
            ("v4", "v2")
        );

        let only = [
            image("v1", "2026-01-02T00:00:00Z", Some("verified")),
            image("w", "2026-01-01T00:00:00Z", Some("withdrawn")),
        ];
        let refused = rollback_error(&only);
        assert!(
            matches!(&refused, LifecycleError::NoPrevious { current, .. } if current == "v1"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("no previous verified image"),
            "{refused}"
        );
        let none = [image("old", "2026-01-01T00:00:00Z", None)];
        assert!(matches!(
            rollback_error(&none),
            LifecycleError::NoCurrent { .. }
        ));
        assert_eq!(rollback_error(&none).code(), Code::BadInput);
    }

    fn rollback_error(images: &[Image]) -> LifecycleError {
        rollback("t", images).unwrap_err()
    }

    #[test]
    fn promoting_an_older_image_withdraws_every_newer_verified_one_oldest_first() {
        let images = history();
        let p = promote("t", &images, "v1", false).unwrap();
        assert_eq!(p.image.id, "v1");
        assert_eq!(p.was, Some(Status::Verified));
        assert_eq!(ids(p.withdraw.iter().copied()), ["v2", "v4"]);
        assert!(!p.is_noop());

        // A withdrawn image by its name: only the verified images newer than it go.
        let p = promote("t", &images, "img-t-w3", false).unwrap();
        assert_eq!(
            (p.image.id.as_str(), p.was),
            ("w3", Some(Status::Withdrawn))
        );
        assert_eq!(ids(p.withdraw.iter().copied()), ["v4"]);

        let p = promote("t", &images, "v4", false).unwrap();
        assert!(p.is_noop() && p.withdraw.is_empty());
    }

    #[test]
    fn promote_refuses_what_was_never_verified_and_what_is_not_the_targets() {
        let images = history();
        let refused = |wanted: &str, adopt: bool| promote("t", &images, wanted, adopt).unwrap_err();
        for (id, status) in [("c7", Status::Candidate), ("f6", Status::Failed)] {
            let e = refused(id, true);
            assert!(
                matches!(&e, LifecycleError::Unverified { status: s, .. } if *s == status),
                "{e}"
            );
            assert!(e.to_string().contains("does not skip verification"), "{e}");
        }
        assert!(matches!(
            refused("old", false),
            LifecycleError::NoStatus { .. }
        ));
        let adopted = promote("t", &images, "old", true).unwrap();
        assert_eq!(adopted.was, None);
        assert_eq!(ids(adopted.withdraw.iter().copied()), ["v1", "v2", "v4"]);
        assert!(matches!(
            refused("v5", false),
            LifecycleError::NotActive { .. }
        ));
        assert!(matches!(
            refused("elsewhere", false),
            LifecycleError::NotOfTarget { .. }
        ));
        let mut twins = history();
        twins[1].name = "twin".into();
        twins[2].name = "twin".into();
        let e = promote("t", &twins, "twin", false).unwrap_err();
        assert!(e.to_string().contains("v1, v2"), "{e}");
        let mut odd = history();
        odd[0].status = Some("Verified".into());
        assert!(matches!(
            promote("t", &odd, "old", true).unwrap_err(),
            LifecycleError::UnknownStatus { .. }
        ));
        for e in [
            refused("c7", false),
            refused("old", false),
            refused("v5", false),
        ] {
            assert_eq!(e.code(), Code::BadInput);
        }
    }

    #[test]
    fn an_image_serves_its_fingerprint_when_verified_or_from_before_the_lifecycle() {
        assert_eq!(serving(None, None), Serving::Serves);
        assert_eq!(
            serving(Some("verified"), Some("2026-01-01T00:00:00Z")),
            Serving::Serves
        );
        assert_eq!(
            serving(Some("withdrawn"), Some("2026-01-01T00:00:00Z")),
            Serving::Held {
                status: Status::Withdrawn,
                since: Some("2026-01-01T00:00:00Z".into())
            }
        );
        assert_eq!(
            serving(Some("failed"), None),
            Serving::Held {
                status: Status::Failed,
                since: None
            }
        );
        assert_eq!(
            serving(Some("candidate"), None),
            Serving::Unverified {
                value: "candidate".into()
            }
        );
        assert_eq!(
            serving(Some("bogus"), None),
            Serving::Unverified {
                value: "bogus".into()
            }
        );
    }

    #[test]
    fn a_reason_fits_a_glance_property() {
        assert!(check_reason(&"é".repeat(255)).is_ok());
        let e = check_reason(&"x".repeat(256)).unwrap_err();
        assert!(e.to_string().contains("256 characters"), "{e}");
    }

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
