//! Markdown for people (pure): the release body, the sticky pull-request comment and
//! the job summary. Records hold no secret values (only names and HMAC digests); the
//! caller still redacts the text before it leaves the process.

use super::{
    changed_names, marker, release_tag, Baseline, PackageBaseline, Validation, RECORD_ASSET,
};
use crate::record::{InputPin, Record, VerificationStatus};

/// Where the run happened: shown as the footer of every text.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The event, as `Event::describe` says it.
    pub event: String,
    pub commit: Option<String>,
    pub run_url: Option<String>,
}

/// Inline code that survives backticks in the value.
pub fn code(value: &str) -> String {
    if value.contains('`') {
        format!("`` {value} ``")
    } else {
        format!("`{value}`")
    }
}

/// A two-column table with an empty header row (GitHub needs one).
pub fn table(rows: &[(&str, String)]) -> String {
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
        Baseline::Release { tag, changes, .. } => {
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

/// The remote inputs the plan pinned, and which of them moved against the latest release
/// (else `--previous`): "the worker moved `a1b2c3d` → `9e0d2b4`". Known before any build.
fn pins_section(record: &Record, baseline: &Baseline) -> String {
    let pins = match baseline {
        Baseline::Release { pins, .. } => pins,
        _ => &record.pins,
    };
    if pins.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n**Pinned inputs**\n\n");
    for pin in pins {
        let short = InputPin::short(pin.kind, &pin.pinned);
        let floating = format!("{} {}", pin.kind.as_str(), code(&pin.floating));
        match &pin.previous {
            Some(previous) => {
                let whose = if pin.input == crate::worker_source::VARIABLE {
                    "the worker".to_string()
                } else {
                    code(&pin.input)
                };
                out.push_str(&format!(
                    "- {whose} moved {} → {} ({floating}): {}\n",
                    code(&InputPin::short(pin.kind, previous)),
                    code(&short),
                    code(&pin.resolved)
                ));
            }
            None => out.push_str(&format!(
                "- {}: {floating} → {}: {}\n",
                code(&pin.input),
                code(&short),
                code(&pin.resolved)
            )),
        }
    }
    out
}

/// The kinds of packages, in the order the diff shows them; any other kind comes after.
const PACKAGE_KINDS: [&str; 4] = ["worker", "kernel", "deb", "pypi"];

/// A kind's lists longer than this fold into `<details>`.
const FOLD_OVER: usize = 10;

/// What changed in the image's packages against the image the target had before, by
/// kind (worker, kernel, deb, pypi), each with old → new versions; empty without an SBOM.
fn packages_section(packages: &PackageBaseline) -> String {
    let (image, diff) = match packages {
        PackageBaseline::None => return String::new(),
        PackageBaseline::Unavailable(why) => {
            return format!("\n**Packages**: no comparison ({why}).\n");
        }
        PackageBaseline::Image { image, diff } => (image, diff),
    };
    if diff.is_empty() {
        return format!(
            "\n**Packages**: none changed against image {}.\n",
            code(image)
        );
    }
    let mut kinds: Vec<&str> = diff
        .added
        .iter()
        .map(|e| e.kind.as_str())
        .chain(diff.removed.iter().map(|e| e.kind.as_str()))
        .chain(diff.changed.iter().map(|c| c.kind.as_str()))
        .collect();
    let rank = |kind: &str| {
        PACKAGE_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(PACKAGE_KINDS.len())
    };
    kinds.sort_by_key(|kind| (rank(kind), *kind));
    kinds.dedup();
    let mut out = format!(
        "\n**Packages** against image {} ({} changed, {} added, {} removed):\n",
        code(image),
        diff.changed.len(),
        diff.added.len(),
        diff.removed.len()
    );
    for kind in kinds {
        let name = |package: &str| code(&crate::sbom::display_name(package));
        let mut lines: Vec<String> = diff
            .changed
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| format!("- {} {} → {}", name(&c.package), code(&c.from), code(&c.to)))
            .collect();
        let changed = lines.len();
        let mut listed = |word: &str, entries: &[crate::sbom::Entry]| {
            let before = lines.len();
            for entry in entries.iter().filter(|e| e.kind == kind) {
                lines.push(format!(
                    "- {word} {} {}",
                    name(&entry.package),
                    code(&entry.version)
                ));
            }
            lines.len() - before
        };
        let added = listed("added", &diff.added);
        let removed = listed("removed", &diff.removed);
        let counts: Vec<String> = [(changed, "changed"), (added, "added"), (removed, "removed")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, word)| format!("{n} {word}"))
            .collect();
        let counts = counts.join(", ");
        let list = lines.join("\n");
        if lines.len() > FOLD_OVER {
            out.push_str(&format!(
                "\n<details><summary>{kind}: {counts}</summary>\n\n{list}\n\n</details>\n"
            ));
        } else {
            out.push_str(&format!("\n**{kind}** ({counts}):\n\n{list}\n"));
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
pub fn release_body(
    record: &Record,
    context: &Context,
    baseline: &Baseline,
    packages: &PackageBaseline,
) -> String {
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
    rows.extend(verification_row(record));
    let sbom = match (&record.sbom, &record.image_id) {
        (Some(_), Some(id)) => format!(
            " Its SBOM (CycloneDX) is attached as {}: `uworker-image sbom-diff OLD NEW` compares two.",
            code(&crate::sbom::asset_name(id))
        ),
        _ => String::new(),
    };
    format!(
        "{marker}\nWorker image of target {target}, built by uworker-image.\n\n{table}\n{images}{regions}{changes}{pins}{packages}\nThe build record, with every input's digest, is attached as {asset}: \
         `uworker-image plan --previous {RECORD_ASSET}` lists what changed since.{sbom}\n",
        marker = marker(&record.target),
        target = code(&record.target),
        table = table(&rows),
        images = images_section(record),
        regions = regions_section(record),
        changes = changes_section(baseline),
        pins = pins_section(record, baseline),
        packages = packages_section(packages),
        asset = code(RECORD_ASSET),
    )
}

/// One line on what merging the pull request will do.
fn on_merge(record: &Record) -> String {
    match &record.image_id {
        _ if record.builds() => format!("a new image will be built ({})", record.reason),
        Some(id) => format!("no build: image {} already has this fingerprint", code(id)),
        // A fingerprint held by its withdrawn or failed image: the plan's reason says so.
        None => format!("no build: {}", record.reason),
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

/// The built image's verification in the cloud, when one ran (docs/verify.md).
fn verification_row(record: &Record) -> Option<(&'static str, String)> {
    let v = record.verification.as_ref()?;
    let seconds = v.total_milliseconds as f64 / 1000.0;
    let text = match v.status {
        VerificationStatus::Passed => format!(
            "✅ passed: {} checks in {seconds:.1} s; the image is `verified`",
            v.checks.len()
        ),
        VerificationStatus::Failed => format!(
            "❌ verification failed: {}; the image is marked `failed` and the previous verified image stays current",
            code(v.failed_check.as_deref().unwrap_or("unknown"))
        ),
        VerificationStatus::Interrupted => {
            "⚠️ interrupted: the image stays a `candidate`".to_string()
        }
    };
    Some(("Verification", text))
}

/// Whether the built image failed its verification.
fn failed_verification(record: &Record) -> bool {
    record
        .verification
        .as_ref()
        .is_some_and(|v| v.status != VerificationStatus::Passed)
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
        "{marker}\n### Worker image {target}: {headline}\n\n{table}\n{changes}{pins}{warnings}\n{footer}",
        marker = marker(&record.target),
        target = code(&record.target),
        table = table(&rows),
        changes = changes_section(baseline),
        pins = pins_section(record, baseline),
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
    packages: &PackageBaseline,
    notes: &[String],
) -> String {
    let result = if record.built() && failed_verification(record) {
        let check = record
            .verification
            .as_ref()
            .and_then(|v| v.failed_check.as_deref());
        match check {
            Some(check) => format!(
                "❌ built {}, but verification failed: {}",
                image_text(record),
                code(check)
            ),
            None => format!("❌ built {}, verification interrupted", image_text(record)),
        }
    } else if record.built() {
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
    rows.extend(verification_row(record));
    if validation != Validation::Unknown {
        rows.push(("Validation", validation_text(validation).to_string()));
    }
    let mut out = format!(
        "### uworker-image: target {}\n\n{}\n{}{}{}{}{}",
        code(&record.target),
        table(&rows),
        regions_section(record),
        changes_section(baseline),
        pins_section(record, baseline),
        packages_section(packages),
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
        let mut held = crate::record::read(&record_json("skip", false, None)).unwrap();
        held.reason = "image img-0 of this fingerprint was withdrawn (rolled back)".into();
        let text = pr_comment(&held, &context(), Validation::Passed, &Baseline::None);
        assert!(
            text.contains(
                "| no build: image img-0 of this fingerprint was withdrawn (rolled back) |"
            ),
            "{text}"
        );
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
                &PackageBaseline::None,
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
        let body = release_body(&record, &context(), &Baseline::None, &PackageBaseline::None);
        assert!(
            !body.contains("Images built for this fingerprint"),
            "{body}"
        );
        record
            .fingerprint_images
            .push(image("img-old", "2026-10-30T03:00:00Z"));
        let body = release_body(&record, &context(), &Baseline::None, &PackageBaseline::None);
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
            &PackageBaseline::None,
            &[],
        );
        assert!(
            text.contains("| Result | ❌ build: FAILED after 3 attempt(s): No valid host |"),
            "{text}"
        );
        assert!(!text.contains("| Validation |"), "{text}");
    }

    #[test]
    fn a_failed_verification_says_so_in_the_summary_and_the_release() {
        use crate::record::{CheckOutcome, Verification};
        let mut record = crate::record::read(&record_json("build", true, Some("img-1"))).unwrap();
        let check = |name: &str, ok: bool| CheckOutcome {
            name: name.into(),
            ok,
            milliseconds: 700,
            output: None,
        };
        record.verification = Some(Verification {
            status: VerificationStatus::Failed,
            checks: vec![check("ssh", true), check("worker-import", false)],
            failed_check: Some("worker-import".into()),
            total_milliseconds: 41_250,
            server_id: Some("srv".into()),
        });
        let plain_summary = |r: &Record| {
            summary(
                r,
                &context(),
                Validation::Unknown,
                &Baseline::None,
                &PackageBaseline::None,
                &[],
            )
        };
        let text = plain_summary(&record);
        assert!(
            text.contains("| Result | ❌ built `img-1` (`worker-north-0123456789ab`), but verification failed: `worker-import` |"),
            "{text}"
        );
        let body = release_body(&record, &context(), &Baseline::None, &PackageBaseline::None);
        assert!(
            body.contains("| Verification | ❌ verification failed: `worker-import`; the image is marked `failed` and the previous verified image stays current |"),
            "{body}"
        );
        let verification = record.verification.as_mut().unwrap();
        verification.status = VerificationStatus::Passed;
        verification.failed_check = None;
        verification.checks[1].ok = true;
        let body = release_body(&record, &context(), &Baseline::None, &PackageBaseline::None);
        assert!(
            body.contains(
                "| Verification | ✅ passed: 2 checks in 41.2 s; the image is `verified` |"
            ),
            "{body}"
        );
        let text = plain_summary(&record);
        assert!(text.contains("| Result | ✅ built"), "{text}");
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
            pins: vec![],
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

    /// No SBOM: no section; none to compare with: a note; the same packages: one line;
    /// a list of more than FOLD_OVER folds, one of FOLD_OVER does not.
    #[test]
    fn the_package_section_says_what_it_compared_or_why_not() {
        assert_eq!(packages_section(&PackageBaseline::None), "");
        assert_eq!(
            packages_section(&PackageBaseline::Unavailable("no earlier image".into())),
            "\n**Packages**: no comparison (no earlier image).\n"
        );
        let image = |diff| PackageBaseline::Image {
            image: "img-0".into(),
            diff,
        };
        assert_eq!(
            packages_section(&image(crate::sbom::Diff::default())),
            "\n**Packages**: none changed against image `img-0`.\n"
        );
        let debs = |n: usize| crate::sbom::Diff {
            added: (0..n)
                .map(|i| crate::sbom::Entry {
                    kind: "deb".into(),
                    package: format!("pkg:deb/debian/p{i}?arch=all"),
                    version: "1".into(),
                })
                .collect(),
            ..Default::default()
        };
        let ten = packages_section(&image(debs(FOLD_OVER)));
        assert!(
            ten.contains("\n**deb** (10 added):\n\n- added `p0:all` `1`\n"),
            "{ten}"
        );
        assert!(!ten.contains("<details>"), "{ten}");
        let eleven = packages_section(&image(debs(FOLD_OVER + 1)));
        assert!(
            eleven.contains("<details><summary>deb: 11 added</summary>\n\n- added `p0:all` `1`\n"),
            "{eleven}"
        );
        // An unknown kind comes after the known ones.
        let mut mixed = debs(1);
        mixed.added.insert(
            0,
            crate::sbom::Entry {
                kind: "gem".into(),
                package: "pkg:gem/rake".into(),
                version: "13".into(),
            },
        );
        let text = packages_section(&image(mixed));
        assert!(
            text.find("**deb**").unwrap() < text.find("**gem**").unwrap(),
            "{text}"
        );
    }

    #[test]
    fn a_copys_release_and_summary_list_each_regions_image() {
        let mut record =
            crate::record::read(&record_json("build", true, Some("img-copy"))).unwrap();
        assert!(
            !release_body(&record, &context(), &Baseline::None, &PackageBaseline::None)
                .contains("each region")
        );
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
            release_body(&record, &context(), &Baseline::None, &PackageBaseline::None)
                .contains(expected),
            "{}",
            release_body(&record, &context(), &Baseline::None, &PackageBaseline::None)
        );
        let summary = summary(
            &record,
            &context(),
            Validation::Unknown,
            &Baseline::None,
            &PackageBaseline::None,
            &[],
        );
        assert!(summary.contains(expected), "{summary}");
    }
}
