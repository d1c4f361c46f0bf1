//! Markdown for people (pure): the release body, the sticky pull-request comment and
//! the job summary. Records hold no secret values (only names and HMAC digests); the
//! caller still redacts the text before it leaves the process.

use super::{changed_names, marker, release_tag, Baseline, Validation, RECORD_ASSET};
use crate::record::Record;

/// Where the run happened: shown as the footer of every text.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The event, as `Event::describe` says it.
    pub event: String,
    pub commit: Option<String>,
    pub run_url: Option<String>,
}

/// Inline code that survives backticks in the value.
fn code(value: &str) -> String {
    if value.contains('`') {
        format!("`` {value} ``")
    } else {
        format!("`{value}`")
    }
}

/// A two-column table with an empty header row (GitHub needs one).
fn table(rows: &[(&str, String)]) -> String {
    let mut out = String::from("| | |\n|---|---|\n");
    for (key, value) in rows {
        out.push_str(&format!("| {key} | {} |\n", value.replace('|', "\\|")));
    }
    out
}

fn short_commit(commit: &str) -> String {
    commit.chars().take(12).collect()
}

fn footer(context: &Context) -> String {
    let mut parts = vec![context.event.clone()];
    if let Some(commit) = &context.commit {
        parts.push(format!("commit {}", code(&short_commit(commit))));
    }
    if let Some(url) = &context.run_url {
        parts.push(format!("[workflow run]({url})"));
    }
    format!("<sub>uworker-image · {}</sub>\n", parts.join(" · "))
}

fn validation_text(validation: Validation) -> &'static str {
    match validation {
        Validation::Passed => "✅ passed",
        Validation::Failed => "❌ failed: see the `validate` step",
        Validation::Cancelled => "⚪ cancelled",
        Validation::Skipped => "⚪ skipped",
        Validation::Unknown => "not run in this job",
    }
}

fn image_text(record: &Record) -> String {
    match (&record.image_id, &record.image_name) {
        (Some(id), Some(name)) => format!("{} ({})", code(id), code(name)),
        (Some(id), None) => code(id),
        _ => "none yet".into(),
    }
}

/// The changed inputs, as a heading line and a list.
fn changes_section(baseline: &Baseline) -> String {
    let (label, changes) = match baseline {
        Baseline::Release { tag, changes } => {
            (format!("the latest image ({})", code(tag)), changes)
        }
        Baseline::Previous(changes) => ("the previous record".to_string(), changes),
        Baseline::None => return "No earlier image of this target to compare with.\n".into(),
        Baseline::Unavailable(why) => {
            return format!("Changed inputs unknown: {why}.\n");
        }
    };
    if changes.is_empty() {
        return format!("No input changed against {label}.\n");
    }
    let mut out = format!(
        "{} input(s) changed against {label}:\n\n",
        changed_names(changes).len()
    );
    for (word, names) in [
        ("added", &changes.added),
        ("removed", &changes.removed),
        ("changed", &changes.changed),
    ] {
        for name in names {
            out.push_str(&format!("- {word}: {}\n", code(name)));
        }
    }
    out
}

fn warnings_section(record: &Record) -> String {
    if record.warnings.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n**Warnings**\n\n");
    for warning in &record.warnings {
        out.push_str(&format!("- {warning}\n"));
    }
    out
}

/// The release's name: image, target and tag.
pub fn release_name(record: &Record) -> String {
    format!(
        "{} {} {}",
        record.manifest.image,
        record.target,
        release_tag(&record.fingerprint)
    )
}

/// The body of a target's release (the marker lets `report` find its newest release).
pub fn release_body(record: &Record, context: &Context, baseline: &Baseline) -> String {
    let mut rows = vec![
        (
            "Image ID",
            record.image_id.as_deref().map(code).unwrap_or_default(),
        ),
        (
            "Image name",
            record.image_name.as_deref().map(code).unwrap_or_default(),
        ),
        ("Target", code(&record.target)),
        ("Fingerprint", code(record.fingerprint.as_str())),
    ];
    if let Some(commit) = &context.commit {
        rows.push(("Commit", code(commit)));
    }
    if let Some(url) = &context.run_url {
        rows.push(("Run", format!("[{url}]({url})")));
    }
    rows.push(("Packer", code(&record.manifest.packer_version)));
    format!(
        "{marker}\nWorker image of target {target}, built by uworker-image.\n\n{table}\n{images}{regions}{changes}\nThe build record, with every input's digest, is attached as {asset}: \
         `uworker-image plan --previous {RECORD_ASSET}` lists what changed since.\n",
        marker = marker(&record.target),
        target = code(&record.target),
        table = table(&rows),
        images = images_section(record),
        regions = regions_section(record),
        changes = changes_section(baseline),
        asset = code(RECORD_ASSET),
    )
}

/// One line on what merging the pull request will do.
fn on_merge(record: &Record) -> String {
    if record.builds() {
        format!("a new image will be built ({})", record.reason)
    } else {
        format!(
            "no build: image {} already has this fingerprint",
            record.image_id.as_deref().map(code).unwrap_or_default()
        )
    }
}

/// Every image built for the fingerprint (a rebuild by `max_age` keeps the fingerprint).
fn images_section(record: &Record) -> String {
    if record.fingerprint_images.len() < 2 {
        return String::new();
    }
    let mut out = String::from("**Images built for this fingerprint**, newest first:\n\n");
    for image in &record.fingerprint_images {
        out.push_str(&format!(
            "- {} {} created {}\n",
            code(&image.id),
            image.name.as_deref().map(code).unwrap_or_default(),
            image.created_at
        ));
    }
    out.push('\n');
    out
}

/// Each region's image of the fingerprint (a copy's record: its source's and its own).
fn regions_section(record: &Record) -> String {
    if record.region_images.is_empty() {
        return String::new();
    }
    let mut out = String::from("**This fingerprint's image in each region**:\n\n");
    for image in &record.region_images {
        out.push_str(&format!(
            "- {} (target {}): {}\n",
            image
                .region
                .as_deref()
                .map(code)
                .unwrap_or_else(|| "the cloud's own region".to_string()),
            code(&image.target),
            code(&image.image_id)
        ));
    }
    out.push('\n');
    out
}

/// The age of the image that serves the fingerprint, when one was skipped to.
fn age_row(record: &Record) -> Option<(&'static str, String)> {
    record.image_age_seconds.map(|s| {
        (
            "Image age",
            crate::plan::human_duration(std::time::Duration::from_secs(s)),
        )
    })
}

/// The sticky comment of one target on a pull request.
pub fn pr_comment(
    record: &Record,
    context: &Context,
    validation: Validation,
    baseline: &Baseline,
) -> String {
    let headline = if validation == Validation::Failed {
        "❌ validation failed"
    } else if record.builds() {
        "merging builds a new image"
    } else {
        "no new image needed"
    };
    let mut rows = vec![
        ("Validation", validation_text(validation).to_string()),
        (
            "Definition",
            "✅ loaded, rendered and fingerprinted".to_string(),
        ),
        ("Fingerprint", code(record.fingerprint.as_str())),
    ];
    rows.extend(age_row(record));
    rows.push(("On merge", on_merge(record)));
    format!(
        "{marker}\n### Worker image {target}: {headline}\n\n{table}\n{changes}{warnings}\n{footer}",
        marker = marker(&record.target),
        target = code(&record.target),
        table = table(&rows),
        changes = changes_section(baseline),
        warnings = warnings_section(record),
        footer = footer(context),
    )
}

/// The job summary: the result, and what was published (`notes`).
pub fn summary(
    record: &Record,
    context: &Context,
    validation: Validation,
    baseline: &Baseline,
    notes: &[String],
) -> String {
    let result = if record.built() {
        format!("✅ built {}", image_text(record))
    } else if record.failed_build() {
        format!("❌ {}", record.reason)
    } else if record.builds() {
        format!("build planned: {}", record.reason)
    } else {
        format!("skipped: {} serves this fingerprint", image_text(record))
    };
    let mut rows = vec![
        ("Result", result),
        ("Action", code(record.action.as_str())),
        ("Fingerprint", code(record.fingerprint.as_str())),
    ];
    rows.extend(age_row(record));
    if validation != Validation::Unknown {
        rows.push(("Validation", validation_text(validation).to_string()));
    }
    let mut out = format!(
        "### uworker-image: target {}\n\n{}\n{}{}{}",
        code(&record.target),
        table(&rows),
        regions_section(record),
        changes_section(baseline),
        warnings_section(record),
    );
    if !notes.is_empty() {
        out.push_str("\n**GitHub**\n\n");
        for note in notes {
            out.push_str(&format!("- {note}\n"));
        }
    }
    out.push('\n');
    out.push_str(&footer(context));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::record_json;
    use super::*;
    use crate::fingerprint::Changes;

    fn context() -> Context {
        Context {
            event: "pull request #7".into(),
            commit: Some("1111111111111111111111111111111111111111".into()),
            run_url: Some("https://github.com/o/r/actions/runs/9".into()),
        }
    }

    #[test]
    fn code_spans_survive_backticks_and_tables_pipes() {
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(
            table(&[("k", "a|b".into())]),
            "| | |\n|---|---|\n| k | a\\|b |\n"
        );
    }

    #[test]
    fn comment_says_what_merging_does() {
        let record = crate::record::read(&record_json("skip", false, Some("img-0"))).unwrap();
        let text = pr_comment(&record, &context(), Validation::Passed, &Baseline::None);
        assert!(text.starts_with("<!-- uworker-image:north -->\n"));
        assert!(text.contains("no build: image `img-0` already has this fingerprint"));
        let failed = pr_comment(&record, &context(), Validation::Failed, &Baseline::None);
        assert!(failed.contains("❌ validation failed"));
    }

    /// Issue 18: the age of the image that serves, in the comment and the summary; every
    /// image of the fingerprint, newest first, in the release body (none for one image).
    #[test]
    fn the_images_age_and_the_fingerprints_images_are_shown() {
        let mut record = crate::record::read(&record_json("skip", false, Some("img-0"))).unwrap();
        record.image_age_seconds = Some(31 * 86_400 + 7);
        for text in [
            pr_comment(&record, &context(), Validation::Passed, &Baseline::None),
            summary(
                &record,
                &context(),
                Validation::Unknown,
                &Baseline::None,
                &[],
            ),
        ] {
            assert!(text.contains("| Image age | 31 days |"), "{text}");
        }
        let image = |id: &str, created: &str| crate::record::FingerprintImage {
            id: id.into(),
            name: Some(format!("uworker-{id}")),
            created_at: created.into(),
        };
        record.fingerprint_images = vec![image("img-new", "2026-11-30T03:00:00Z")];
        let body = release_body(&record, &context(), &Baseline::None);
        assert!(
            !body.contains("Images built for this fingerprint"),
            "{body}"
        );
        record
            .fingerprint_images
            .push(image("img-old", "2026-10-30T03:00:00Z"));
        let body = release_body(&record, &context(), &Baseline::None);
        let listed = body
            .split_once("**Images built for this fingerprint**, newest first:\n\n")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("{body}"));
        assert!(
            listed.starts_with(
                "- `img-new` `uworker-img-new` created 2026-11-30T03:00:00Z\n\
                 - `img-old` `uworker-img-old` created 2026-10-30T03:00:00Z\n"
            ),
            "{body}"
        );
    }

    #[test]
    fn a_failed_build_says_so_in_the_summary() {
        let json = record_json("build", false, None).replace(
            "built in 1 attempt(s)",
            "build: FAILED after 3 attempt(s): No valid host",
        );
        let record = crate::record::read(&json).unwrap();
        let text = summary(
            &record,
            &context(),
            Validation::Unknown,
            &Baseline::None,
            &[],
        );
        assert!(
            text.contains("| Result | ❌ build: FAILED after 3 attempt(s): No valid host |"),
            "{text}"
        );
        assert!(!text.contains("| Validation |"), "{text}");
    }

    #[test]
    fn changes_are_listed_by_kind() {
        let changes = Changes {
            added: vec!["file a".into()],
            removed: vec![],
            changed: vec!["variable x".into()],
        };
        let text = changes_section(&Baseline::Release {
            tag: "image-1".into(),
            changes,
        });
        assert_eq!(
            text,
            "2 input(s) changed against the latest image (`image-1`):\n\n- added: `file a`\n- changed: `variable x`\n"
        );
        assert_eq!(
            changes_section(&Baseline::Previous(Changes::default())),
            "No input changed against the previous record.\n"
        );
    }

    #[test]
    fn a_copys_release_and_summary_list_each_regions_image() {
        let mut record =
            crate::record::read(&record_json("build", true, Some("img-copy"))).unwrap();
        assert!(!release_body(&record, &context(), &Baseline::None).contains("each region"));
        record.region_images = vec![
            crate::record::RegionImage {
                target: "north".into(),
                region: Some("RegionOne".into()),
                image_id: "img-src".into(),
            },
            crate::record::RegionImage {
                target: "east".into(),
                region: None,
                image_id: "img-copy".into(),
            },
        ];
        let expected = "**This fingerprint's image in each region**:\n\n- `RegionOne` (target `north`): `img-src`\n- the cloud's own region (target `east`): `img-copy`\n\n";
        assert!(
            release_body(&record, &context(), &Baseline::None).contains(expected),
            "{}",
            release_body(&record, &context(), &Baseline::None)
        );
        let summary = summary(
            &record,
            &context(),
            Validation::Unknown,
            &Baseline::None,
            &[],
        );
        assert!(summary.contains(expected), "{summary}");
    }
}
