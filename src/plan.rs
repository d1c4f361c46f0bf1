//! The decision: build or skip, and why (pure). Its result is a plan record.

use std::time::Duration;

use crate::fingerprint::{Changes, Fingerprint, Manifest};
use crate::lifecycle::{Serving, Status};
use crate::record::{Action, BaseImageChoice, InputPin, PinKind, Record};

/// What looking for an image with the fingerprint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The lookup could not run; the text says why.
    Unavailable(String),
    Found {
        image_id: String,
        /// Since Glance's `created_at` of the image (None when it could not be read).
        age: Option<Duration>,
        /// Its lifecycle status: whether it serves its fingerprint.
        serving: Serving,
    },
    Missing,
}

/// When an image with the fingerprint does not serve: `--force`, or older than `max_age`
/// (an unchanged definition still needs its packages' security updates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub force: bool,
    pub max_age: Option<Duration>,
}

/// The plan record for `manifest`, whose `fingerprint` (as `Manifest::fingerprint` gives
/// it) the caller has already computed to look it up; `pins` are the inputs pinned into
/// it (compared with `previous`'s, so that the reason says what moved).
#[allow(clippy::too_many_arguments)]
pub fn decide(
    manifest: Manifest,
    fingerprint: Fingerprint,
    base_image: Option<BaseImageChoice>,
    lookup: Lookup,
    policy: Policy,
    previous: Option<&Manifest>,
    pins: Vec<InputPin>,
    warnings: Vec<String>,
) -> Record {
    let changes = previous.map(|p| Changes::between(p, &manifest));
    let pins = crate::pin::against_previous(pins, previous);
    let image_age_seconds = match &lookup {
        Lookup::Found {
            age,
            serving: Serving::Serves,
            ..
        } => age.map(|a| a.as_secs()),
        _ => None,
    };
    let (action, image_id, reason) = match (lookup, policy.force) {
        (Lookup::Found { image_id, .. }, true) => (
            Action::Build,
            None,
            format!("--force: rebuilding although image {image_id} has this fingerprint"),
        ),
        // Rolled back or failed: the same inputs would make the same image again.
        (
            Lookup::Found {
                image_id,
                serving: Serving::Held { status, since },
                ..
            },
            false,
        ) => (Action::Skip, None, held_reason(&image_id, status, since)),
        (
            Lookup::Found {
                image_id,
                serving: Serving::Unverified { value },
                ..
            },
            false,
        ) => (
            Action::Build,
            None,
            format!(
                "image {image_id} of this fingerprint is `{value}`, never verified (a run that \
                 ended before its verification): a build is planned"
            ),
        ),
        (
            Lookup::Found {
                image_id,
                age: Some(age),
                ..
            },
            false,
        ) if policy.max_age.is_some_and(|max| age > max) => {
            let max = policy.max_age.unwrap_or_default();
            let (built, limit) = match (human_duration(age), human_duration(max)) {
                (built, limit) if built != limit => (built, limit),
                // Rounded alike ("1 day" and "1 day"): the exact figures tell them apart.
                _ => (
                    humantime::format_duration(age).to_string(),
                    humantime::format_duration(max).to_string(),
                ),
            };
            (
                Action::Build,
                None,
                format!("image {image_id} was built {built} ago; max_age is {limit}"),
            )
        }
        (Lookup::Found { image_id, .. }, false) => (
            Action::Skip,
            Some(image_id.clone()),
            format!("image {image_id} already has this fingerprint"),
        ),
        (_, true) => (
            Action::Build,
            None,
            "--force: rebuilding on request".to_string(),
        ),
        (Lookup::Missing, false) => (
            Action::Build,
            None,
            "no image has this fingerprint yet".to_string(),
        ),
        (Lookup::Unavailable(why), false) => (
            Action::Build,
            None,
            format!("{why}: cannot look for an image with this fingerprint, so a build is planned"),
        ),
    };
    let moved: Vec<String> = pins.iter().filter_map(moved_reason).collect();
    let reason = if action == Action::Build && !policy.force && !moved.is_empty() {
        format!("{}; {reason}", moved.join("; "))
    } else {
        reason
    };
    Record {
        image_id,
        image_age_seconds,
        base_image,
        changes,
        warnings,
        pins,
        ..Record::plan(manifest, fingerprint, action, reason)
    }
}

/// Why the image of a withdrawn or failed fingerprint is not built again: the plan skips
/// (nothing serves from it; the target's current image is still the previous verified
/// one), and says what would build.
fn held_reason(image_id: &str, status: Status, since: Option<String>) -> String {
    let what = match status {
        Status::Failed => "failed its verification".to_string(),
        _ => match since {
            Some(at) => format!("was withdrawn (rolled back) on {at}"),
            None => "was withdrawn (rolled back)".to_string(),
        },
    };
    format!(
        "image {image_id} of this fingerprint {what}: a rebuild needs a changed input or --force"
    )
}

/// Why a pinned input makes a build, when it differs from the previous run's:
/// "the worker's branch moved (a1b2c3d → 9e0d2b4)".
fn moved_reason(pin: &InputPin) -> Option<String> {
    let moved = pin.moved()?;
    let whose = if pin.input == crate::worker_source::VARIABLE {
        "the worker's".to_string()
    } else {
        format!("`{}`'s", pin.input)
    };
    Some(match pin.kind {
        PinKind::Git if pin.floating == "HEAD" => {
            format!("{whose} default branch moved ({moved})")
        }
        PinKind::Git => format!("{whose} branch moved ({moved})"),
        PinKind::Requirement => format!(
            "{whose} requirement `{}` takes another release ({moved})",
            pin.floating
        ),
        PinKind::Url => format!("{whose} URL serves other content ({moved})"),
    })
}

/// A duration in its largest whole unit: `31 days`, `3 hours`, `1 minute`, `2 seconds`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (count, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| secs >= *size)
        .map(|(size, unit)| (secs / size, unit))
        .unwrap_or((secs, "second"));
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// The plan for a person to read.
pub fn to_text(plan: &Record, previous_label: Option<&str>) -> String {
    let mut out = format!(
        "target:      {}\nfingerprint: {}\naction:      {}\nreason:      {}\n",
        plan.target, plan.fingerprint, plan.action, plan.reason
    );
    if let Some(id) = &plan.image_id {
        out.push_str(&format!("image:       {id}\n"));
    }
    if let Some(age) = plan.image_age_seconds {
        out.push_str(&format!(
            "image age:   {}\n",
            human_duration(Duration::from_secs(age))
        ));
    }
    if let Some(base) = &plan.base_image {
        out.push_str(&format!("base image:  {}\n", base.describe()));
    }
    for pin in &plan.pins {
        out.push_str(&format!("{}: {}", pin.input, pin.arrow()));
        match pin.moved() {
            Some(moved) => out.push_str(&format!(" (moved: {moved})\n")),
            None => out.push('\n'),
        }
    }
    if let (Some(changes), Some(label)) = (&plan.changes, previous_label) {
        if changes.is_empty() {
            out.push_str(&format!("changes:     none against {label}\n"));
        } else {
            out.push_str(&format!("changes against {label}:\n"));
            for (word, names) in [
                ("added", &changes.added),
                ("removed", &changes.removed),
                ("changed", &changes.changed),
            ] {
                for name in names {
                    out.push_str(&format!("  {word:<8} {name}\n"));
                }
            }
        }
    }
    for warning in &plan.warnings {
        out.push_str(&format!("warning:     {warning}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "image": "uworker", "target": "t", "template_sha256": "00",
            "files": [], "variables": {}, "secrets": {},
            "base_image": {"by": "id", "value": "base"}, "packer_version": "1.6.6"
        }))
        .unwrap()
    }

    fn plan(age: Option<u64>, policy: Policy) -> Record {
        plan_of(age, Serving::Serves, policy)
    }

    fn plan_of(age: Option<u64>, serving: Serving, policy: Policy) -> Record {
        let lookup = Lookup::Found {
            image_id: "img-1".into(),
            age: age.map(Duration::from_secs),
            serving,
        };
        decide(
            manifest(),
            "sha256:ab".to_string().into(),
            None,
            lookup,
            policy,
            None,
            vec![],
            vec![],
        )
    }

    const DAY: u64 = 86_400;

    #[test]
    fn an_image_older_than_max_age_is_rebuilt_and_the_reason_says_how_old() {
        let max_age = Some(Duration::from_secs(30 * DAY));
        let stale = plan(
            Some(31 * DAY + 5),
            Policy {
                force: false,
                max_age,
            },
        );
        assert_eq!(stale.action, Action::Build);
        assert_eq!(stale.image_id, None);
        assert_eq!(
            stale.reason,
            "image img-1 was built 31 days ago; max_age is 30 days"
        );
        assert_eq!(stale.image_age_seconds, Some(31 * DAY + 5));

        // Ages that round alike are told apart, never "1 day ago; max_age is 1 day".
        let close = Some(Duration::from_secs(DAY + 3_600));
        let just_stale = plan(
            Some(DAY + 3_660),
            Policy {
                force: false,
                max_age: close,
            },
        );
        assert_eq!(
            just_stale.reason,
            "image img-1 was built 1day 1h 1m ago; max_age is 1day 1h"
        );

        let fresh = plan(
            Some(30 * DAY),
            Policy {
                force: false,
                max_age,
            },
        );
        assert_eq!(fresh.action, Action::Skip);
        assert_eq!(fresh.image_id.as_deref(), Some("img-1"));
        assert!(to_text(&fresh, None).contains("image age:   30 days\n"));
    }

    #[test]
    fn without_max_age_or_a_known_age_the_image_serves() {
        let old = Some(3650 * DAY);
        assert_eq!(plan(old, Policy::default()).action, Action::Skip);
        let max_age = Some(Duration::from_secs(1));
        assert_eq!(
            plan(
                None,
                Policy {
                    force: false,
                    max_age
                }
            )
            .action,
            Action::Skip
        );
        let forced = plan(
            old,
            Policy {
                force: true,
                max_age: None,
            },
        );
        assert_eq!(forced.action, Action::Build);
        assert!(forced.reason.starts_with("--force"), "{}", forced.reason);
    }

    /// A rolled-back or failed fingerprint is not built again by itself, old or not (the
    /// same inputs would make the same image), nor does its image serve; `--force` builds.
    #[test]
    fn a_withdrawn_or_failed_image_does_not_serve_and_holds_its_fingerprint() {
        let withdrawn = || Serving::Held {
            status: Status::Withdrawn,
            since: Some("2026-11-30T12:00:00Z".into()),
        };
        let stale = Policy {
            force: false,
            max_age: Some(Duration::from_secs(DAY)),
        };
        for policy in [Policy::default(), stale] {
            let held = plan_of(Some(2 * DAY), withdrawn(), policy);
            assert_eq!(held.action, Action::Skip);
            assert_eq!((held.image_id, held.image_age_seconds), (None, None));
            assert_eq!(
                held.reason,
                "image img-1 of this fingerprint was withdrawn (rolled back) on \
                 2026-11-30T12:00:00Z: a rebuild needs a changed input or --force"
            );
        }
        let failed = Serving::Held {
            status: Status::Failed,
            since: None,
        };
        let held = plan_of(None, failed.clone(), Policy::default());
        assert_eq!((held.action, held.image_id), (Action::Skip, None));
        assert_eq!(
            held.reason,
            "image img-1 of this fingerprint failed its verification: a rebuild needs a \
             changed input or --force"
        );
        let undated = Serving::Held {
            status: Status::Withdrawn,
            since: None,
        };
        assert!(plan_of(None, undated, Policy::default())
            .reason
            .contains("was withdrawn (rolled back): a rebuild"));
        let forced = Policy {
            force: true,
            max_age: None,
        };
        for serving in [withdrawn(), failed] {
            let p = plan_of(None, serving, forced);
            assert_eq!(p.action, Action::Build);
            assert!(p.reason.starts_with("--force"), "{}", p.reason);
        }
    }

    /// A candidate is an image whose run died before verifying it: it never served, so the
    /// fingerprint is built (and verified) again.
    #[test]
    fn a_candidate_does_not_serve_and_is_built_again() {
        let candidate = Serving::Unverified {
            value: "candidate".into(),
        };
        let p = plan_of(Some(5), candidate, Policy::default());
        assert_eq!(
            (p.action, p.image_id, p.image_age_seconds),
            (Action::Build, None, None)
        );
        assert_eq!(
            p.reason,
            "image img-1 of this fingerprint is `candidate`, never verified (a run that ended \
             before its verification): a build is planned"
        );
    }

    fn git_pin(commit: &str, floating: &str) -> InputPin {
        InputPin {
            input: "worker_source".into(),
            kind: PinKind::Git,
            written: "git+https://h/w.git".into(),
            resolved: format!("git+https://h/w.git@{commit}"),
            floating: floating.into(),
            pinned: commit.into(),
            previous: None,
        }
    }

    fn with_worker_at(commit: &str) -> Manifest {
        let mut m = manifest();
        m.variables.insert(
            "worker_source".into(),
            format!("git+https://h/w.git@{commit}#subdirectory=src"),
        );
        m
    }

    #[test]
    fn a_pin_that_moved_against_the_previous_run_is_the_reason_for_the_build() {
        let (old, new) = ("a".repeat(40), "b".repeat(40));
        let decide_with = |previous: &Manifest, floating: &str, policy: Policy| {
            decide(
                with_worker_at(&new),
                "sha256:ab".to_string().into(),
                None,
                Lookup::Missing,
                policy,
                Some(previous),
                vec![git_pin(&new, floating)],
                vec![],
            )
        };
        let moved = decide_with(&with_worker_at(&old), "main", Policy::default());
        assert_eq!(moved.action, Action::Build);
        assert_eq!(
            moved.reason,
            "the worker's branch moved (aaaaaaa → bbbbbbb); no image has this fingerprint yet"
        );
        assert_eq!(moved.pins[0].previous.as_deref(), Some(old.as_str()));
        assert!(
            to_text(&moved, Some("prev.json"))
                .contains("worker_source: main → bbbbbbbb… (moved: aaaaaaa → bbbbbbb)\n"),
            "{}",
            to_text(&moved, None)
        );
        let head = decide_with(&with_worker_at(&old), "HEAD", Policy::default());
        assert!(
            head.reason
                .starts_with("the worker's default branch moved (aaaaaaa → bbbbbbb); "),
            "{}",
            head.reason
        );
        // --force says why itself; the pin still records the move.
        let forced = decide_with(
            &with_worker_at(&old),
            "main",
            Policy {
                force: true,
                max_age: None,
            },
        );
        assert_eq!(forced.reason, "--force: rebuilding on request");
        assert!(forced.pins[0].previous.is_some());
        // The same commit, or a previous value that was not pinned: nothing moved.
        for previous in [with_worker_at(&new), manifest()] {
            let same = decide_with(&previous, "main", Policy::default());
            assert_eq!(same.reason, "no image has this fingerprint yet");
            assert_eq!(same.pins[0].previous, None);
            assert!(to_text(&same, None).contains("worker_source: main → bbbbbbbb…\n"));
        }
    }

    #[test]
    fn durations_read_in_their_largest_unit() {
        let text = |s| human_duration(Duration::from_secs(s));
        assert_eq!(text(0), "0 seconds");
        assert_eq!(text(1), "1 second");
        assert_eq!(text(59), "59 seconds");
        assert_eq!(text(60), "1 minute");
        assert_eq!(text(3 * 3600 + 59), "3 hours");
        assert_eq!(text(DAY), "1 day");
        assert_eq!(text(31 * DAY), "31 days");
    }
}
