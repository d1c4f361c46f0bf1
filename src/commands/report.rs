//! `report`: a plan or build record to GitHub. Push to the default branch or dispatch
//! with a new image: a release `image-<12 hex>` (created or updated) with the record as
//! `image.json`. Pull request: one sticky comment per target. Always: step outputs and
//! the job summary. `plan` and `build` call `publish` themselves inside Actions.

use anyhow::{Context as _, Result};

use crate::ci::{self, Actions, Event};
use crate::definition::WorkerKeys;
use crate::env::Env;
use crate::error_chain::Chain;
use crate::exit::Code;
use crate::github::{self, GitHub, GitHubError};
use crate::http::retry::Retry;
use crate::record::{Provenance, Record};
use crate::report::markdown::{self, Context};
use crate::report::{
    marker, outputs, release_tag, Baseline, PackageBaseline, ReportError, Validation, RECORD_ASSET,
};
use crate::request;
use crate::secrets::{Redactor, WorkerConfig};

pub fn run(request: &request::Report, env: &Env) -> Result<Code> {
    let path = request.record.display().to_string();
    let text = crate::input_file::read_text(&request.record, crate::input_file::RECORD_CAP)
        .map_err(|error| ReportError::Read {
            path: path.clone(),
            error,
        })?;
    let record = crate::record::read(&text).map_err(|e| ReportError::unusable(&path, e))?;
    let validation = request.validation;
    let redactor = Redactor::for_run(
        &WorkerConfig::gather(None, env, &WorkerKeys::default()),
        env,
    );
    if ci::in_actions(env) {
        ci::mask_secrets(&redactor, env);
    }
    let sbom = sbom_beside(&request.record, &record);
    publish(&record, validation, env, &redactor, sbom.as_deref())
}

/// The SBOM `build --out` wrote next to the record, when it is the one the record names
/// (its SHA-256); one missing or changed is left out with a warning, never attached.
fn sbom_beside(record_path: &std::path::Path, record: &Record) -> Option<String> {
    let sbom = record.sbom.as_ref()?;
    let path = record_path.with_file_name(&sbom.file);
    let text = match crate::input_file::read_text(&path, crate::input_file::RECORD_CAP) {
        Ok(text) => text,
        Err(error) => {
            ci::warning(&format!(
                "the SBOM is not attached: cannot read {} ({})",
                path.display(),
                Chain(&error)
            ));
            return None;
        }
    };
    let sha256 = crate::sbom::sha256(&text);
    if sha256 != sbom.sha256 {
        ci::warning(&format!(
            "the SBOM is not attached: {} has SHA-256 {sha256}, the record says {}",
            path.display(),
            sbom.sha256
        ));
        return None;
    }
    Some(text)
}

/// What `plan` and `build` do after their own output inside Actions (unless
/// `--no-report`): the same as `report --record` on the record they print.
pub fn after_run(
    record: &Record,
    validation: Validation,
    env: &Env,
    redactor: &Redactor,
    sbom: Option<&str>,
) -> Result<Code> {
    publish(record, validation, env, redactor, sbom)
}

/// Publishes the record (and the built image's SBOM, `sbom`); outputs and the summary
/// are written even when GitHub fails.
pub fn publish(
    record: &Record,
    validation: Validation,
    env: &Env,
    redactor: &Redactor,
    sbom: Option<&str>,
) -> Result<Code> {
    let provenance = Provenance::from_env(env);
    let mut context = Context {
        event: "outside GitHub Actions".into(),
        commit: record.git_commit.clone().or(provenance.git_commit),
        run_url: record.run_url.clone().or(provenance.run_url),
    };
    let Some(actions) = Actions::detect(env) else {
        // Outside Actions: show what the summary would say; nothing is sent.
        let baseline = Baseline::choose(record, None);
        let packages = no_package_baseline(record, "outside GitHub Actions");
        let text = markdown::summary(record, &context, validation, &baseline, &packages, &[]);
        print!("{}", redactor.redact(&text));
        return Ok(Code::Ok);
    };
    context.event = actions.event.describe();
    if let (
        None,
        Event::PullRequest {
            head_sha: Some(sha),
            ..
        },
    ) = (&record.git_commit, &actions.event)
    {
        // GITHUB_SHA of a pull request is a merge commit nobody pushed.
        context.commit = Some(sha.clone());
    }
    let mut notes = Vec::new();
    let published = {
        let _group = ci::Group::start(&format!("uworker-image: report {}", record.target));
        to_github(
            &actions,
            Published {
                record,
                sbom,
                validation,
                context: &context,
            },
            env,
            redactor,
            &mut notes,
        )
    };
    let (baseline, packages, result) = match published {
        Ok((baseline, packages)) => (baseline, packages, Ok(Code::Ok)),
        Err(error) => {
            notes.push(format!("❌ {}", redactor.redact(&format!("{error:#}"))));
            let packages = no_package_baseline(record, "publishing failed");
            (Baseline::choose(record, None), packages, Err(error))
        }
    };
    let outputs: Vec<(&str, String)> = outputs(record, &baseline)
        .into_iter()
        .map(|(k, v)| (k, redactor.redact(&v).into_owned()))
        .collect();
    actions
        .set_outputs(&outputs)
        .context("writing GITHUB_OUTPUT")?;
    let summary = markdown::summary(record, &context, validation, &baseline, &packages, &notes);
    actions
        .add_summary(&redactor.redact(&summary))
        .context("writing GITHUB_STEP_SUMMARY")?;
    result
}

/// Nothing to compare the packages with, and why; nothing at all for a record without
/// an SBOM.
fn no_package_baseline(record: &Record, why: &str) -> PackageBaseline {
    if record.sbom.is_some() && record.built() {
        PackageBaseline::Unavailable(why.to_string())
    } else {
        PackageBaseline::None
    }
}

/// What a report publishes: the record, the built image's SBOM, and where it ran.
struct Published<'a> {
    record: &'a Record,
    sbom: Option<&'a str>,
    validation: Validation,
    context: &'a Context,
}

/// The release or the comment, whichever the event calls for; returns what the inputs
/// and the packages were compared with.
fn to_github(
    actions: &Actions,
    published: Published,
    env: &Env,
    redactor: &Redactor,
    notes: &mut Vec<String>,
) -> Result<(Baseline, PackageBaseline)> {
    let Published {
        record,
        sbom,
        validation,
        context,
    } = published;
    let pull_request = match actions.event {
        // Number 0: the payload was unreadable; there is nothing to comment on.
        Event::PullRequest { number, fork, .. } if number > 0 => Some((number, fork)),
        _ => None,
    };
    let release = actions.event.publishes_releases() && record.built();
    let publishes = release || pull_request.is_some();
    let Some(token) = env.get("GITHUB_TOKEN") else {
        if release {
            return Err(ReportError::NoToken.into());
        }
        let note = if publishes {
            "GITHUB_TOKEN is not set: no pull-request comment; this summary is the report".into()
        } else {
            nothing_to_publish(record, &actions.event)
        };
        if publishes {
            ci::warning(&note);
        }
        notes.push(note);
        let packages = no_package_baseline(record, "GITHUB_TOKEN is not set");
        return Ok((Baseline::choose(record, None), packages));
    };
    let repository = actions.repository.as_deref().unwrap_or_default();
    let api = env
        .get("GITHUB_API_URL")
        .unwrap_or("https://api.github.com");
    let github = GitHub::new(api, repository, token, retry_settings(env)?)?;
    // The comparison with the latest image is worth a lookup on every event (the
    // `changed` output), but only a failure to publish fails the step.
    let (baseline, latest) = match latest_baseline(&github, record) {
        Ok(found) => found,
        Err(error) if !publishes => {
            let why = redactor.redact(&format!("{error:#}")).into_owned();
            ci::warning(&format!("changed inputs unknown: {why}"));
            (Baseline::Unavailable(why), None)
        }
        Err(error) => return Err(error),
    };
    let packages = match sbom {
        Some(text) if record.built() => package_baseline(&github, record, text, latest.as_ref()),
        _ => no_package_baseline(record, "the SBOM is not at hand"),
    };
    if !publishes {
        notes.push(nothing_to_publish(record, &actions.event));
        return Ok((baseline, packages));
    }
    let redacted = |text: String| redactor.redact(&text).into_owned();
    if release {
        let body = redacted(markdown::release_body(
            record, context, &baseline, &packages,
        ));
        publish_release(&github, record, sbom, &body, context, notes)?;
    } else if let Some((number, fork)) = pull_request {
        let body = redacted(markdown::pr_comment(record, context, validation, &baseline));
        sticky_comment(&github, env, number, fork, &record.target, &body, notes)?;
    }
    Ok((baseline, packages))
}

/// The built image's packages against the image the target had before: the same
/// fingerprint's older image (a `max_age` rebuild), else the latest release's image,
/// through its SBOM asset. What cannot be found is a note, never a failure.
fn package_baseline(
    github: &GitHub,
    record: &Record,
    sbom: &str,
    latest: Option<&(github::Release, Option<String>)>,
) -> PackageBaseline {
    let new = match crate::sbom::read(sbom) {
        Ok(new) => new,
        Err(error) => return PackageBaseline::Unavailable(Chain(&error).to_string()),
    };
    let older = record
        .fingerprint_images
        .iter()
        .find(|image| Some(&image.id) != record.image_id.as_ref());
    let (release, image) = match (older, latest) {
        (Some(older), _) => match github.release_by_tag(&release_tag(&record.fingerprint)) {
            Ok(Some(release)) => (release, older.id.clone()),
            Ok(None) => {
                return PackageBaseline::Unavailable(format!(
                    "image {} of this fingerprint has no release",
                    older.id
                ))
            }
            Err(error) => return PackageBaseline::Unavailable(Chain(&error).to_string()),
        },
        (None, Some((release, Some(image)))) => (release.clone(), image.clone()),
        (None, Some((release, None))) => {
            return PackageBaseline::Unavailable(format!(
                "the record of release {} names no image",
                release.tag_name
            ))
        }
        (None, None) => {
            return PackageBaseline::Unavailable(
                "no earlier image of this target to compare with".into(),
            )
        }
    };
    let asset = crate::sbom::asset_name(&image);
    let old = match github.asset_text(&release, &asset) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return PackageBaseline::Unavailable(format!(
                "release {} has no SBOM of image {image} ({asset})",
                release.tag_name
            ))
        }
        Err(error) => return PackageBaseline::Unavailable(Chain(&error).to_string()),
    };
    match crate::sbom::read(&old) {
        Ok(old) => PackageBaseline::Image {
            image,
            diff: crate::sbom::diff(&old, &new),
        },
        Err(error) => PackageBaseline::Unavailable(format!(
            "{asset} of release {}: {}",
            release.tag_name,
            Chain(&error)
        )),
    }
}

fn nothing_to_publish(record: &Record, event: &Event) -> String {
    if record.built() {
        format!(
            "a new image, but no release: a {} does not publish (push to the default branch or dispatch does)",
            event.describe()
        )
    } else if record.builds() {
        "no image was built in this run, so no release".into()
    } else {
        format!(
            "no new image: `{}` already serves this fingerprint ({}), no release made",
            record.image_id.as_deref().unwrap_or("?"),
            release_tag(&record.fingerprint)
        )
    }
}

/// Test and operator knob: the first retry delay (GitHub's answers decide the rest).
pub fn retry_settings(env: &Env) -> Result<Retry> {
    let mut retry = github::default_retry();
    if let Some(text) = env.get("UWORKER_IMAGE_GITHUB_RETRY_DELAY") {
        retry.first_delay =
            humantime::parse_duration(text).map_err(|e| crate::inputs::InputError::BadValue {
                origin: "environment".into(),
                key: "UWORKER_IMAGE_GITHUB_RETRY_DELAY".into(),
                message: format!("{e} (a duration such as 1s or 200ms)"),
            })?;
    }
    Ok(retry)
}

/// The latest release and the image its record names.
type LatestRelease = (github::Release, Option<String>);

/// The target's latest image release (other than this fingerprint's) and its manifest;
/// with that release and the image its record names.
fn latest_baseline(github: &GitHub, record: &Record) -> Result<(Baseline, Option<LatestRelease>)> {
    let tag = release_tag(&record.fingerprint);
    match github.latest_asset(&marker(&record.target), RECORD_ASSET, &tag) {
        Ok(Some((release, text))) => {
            let label = format!("{RECORD_ASSET} of release {}", release.tag_name);
            let image = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("image_id")?.as_str().map(str::to_string));
            // Only its manifest is compared: a record a newer release wrote serves too.
            let baseline = match crate::record::read_manifest(&text) {
                Ok(latest) => Baseline::choose(record, Some((release.tag_name.clone(), latest))),
                Err(e) => Baseline::Unavailable(
                    Chain(&ReportError::unusable(&label, e.into())).to_string(),
                ),
            };
            Ok((baseline, Some((release, image))))
        }
        Ok(None) => Ok((Baseline::choose(record, None), None)),
        Err(e) if e.is_forbidden() => Ok((
            Baseline::Unavailable(format!("the token may not read releases ({})", Chain(&e))),
            None,
        )),
        Err(e) => Err(e.into()),
    }
}

fn publish_release(
    github: &GitHub,
    record: &Record,
    sbom: Option<&str>,
    body: &str,
    context: &Context,
    notes: &mut Vec<String>,
) -> Result<()> {
    let tag = release_tag(&record.fingerprint);
    let name = markdown::release_name(record);
    let hint = || "the job's token needs `permissions: contents: write` to publish releases";
    let existing = github.release_by_tag(&tag)?;
    let (release, verb) = match existing {
        Some(existing) => (github.update_release(&existing, &name, body), "updated"),
        None => match github.create_release(&tag, &name, body, context.commit.as_deref()) {
            // Another job made it meanwhile: update that one, never a duplicate.
            Err(GitHubError::Status { status: 422, .. }) => match github.release_by_tag(&tag)? {
                Some(raced) => (github.update_release(&raced, &name, body), "updated"),
                None => (github.create_release(&tag, &name, body, None), "created"),
            },
            other => (other, "created"),
        },
    };
    let release = release.map_err(|e| {
        let forbidden = e.is_forbidden();
        let error = anyhow::Error::from(e);
        if forbidden {
            error.context(hint())
        } else {
            error
        }
    })?;
    let asset = serde_json::to_vec_pretty(record).context("serialising the record")?;
    github.replace_asset(&release, RECORD_ASSET, asset)?;
    let mut attached = format!("`{RECORD_ASSET}`");
    if let (Some(text), Some(image)) = (sbom, &record.image_id) {
        let name = crate::sbom::asset_name(image);
        github.replace_asset(&release, &name, text.as_bytes().to_vec())?;
        attached.push_str(&format!(" and `{name}`"));
    }
    notes.push(format!(
        "{verb} release [{tag}]({}) with {attached}",
        release.html_url
    ));
    eprintln!("report: {verb} release {tag}: {}", release.html_url);
    Ok(())
}

/// Whose comments are ours: UWORKER_IMAGE_COMMENT_AUTHOR when set (an App token's bot,
/// `NAME[bot]`), else the login the token acts as (a personal token's user), else
/// `github-actions[bot]`: GitHub does not tell installation tokens who they are.
fn comment_author(github: &GitHub, env: &Env) -> Result<String> {
    if let Some(author) = env.get("UWORKER_IMAGE_COMMENT_AUTHOR").map(str::trim) {
        if !author.is_empty() {
            return Ok(author.to_string());
        }
    }
    Ok(github
        .authenticated_login()?
        .unwrap_or_else(|| GITHUB_ACTIONS_BOT.to_string()))
}

/// The login GITHUB_TOKEN's comments carry.
const GITHUB_ACTIONS_BOT: &str = "github-actions[bot]";

/// One comment per target, found by its marker and its author, and edited in place. A 403 (a fork's
/// read-only token) is a warning: the summary carries the report instead.
fn sticky_comment(
    github: &GitHub,
    env: &Env,
    number: u64,
    fork: bool,
    target: &str,
    body: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let author = comment_author(github, env)?;
    let posted = match github.find_comment(number, &marker(target), &author) {
        Ok(Some(comment)) => github
            .update_comment(comment.id, body)
            .map(|c| ("updated", c)),
        Ok(None) => github.create_comment(number, body).map(|c| ("posted", c)),
        Err(e) => Err(e),
    };
    match posted {
        Ok((verb, comment)) => {
            notes.push(format!(
                "{verb} the [pull request comment]({})",
                comment.html_url
            ));
            eprintln!(
                "report: {verb} the comment on #{number}: {}",
                comment.html_url
            );
            Ok(())
        }
        Err(e) if e.is_forbidden() => {
            let why = if fork {
                "a fork's pull request gets a read-only token"
            } else {
                "the job's token needs `permissions: pull-requests: write`"
            };
            let note = format!(
                "no comment on #{number}: {why} ({}); this summary is the report",
                Chain(&e)
            );
            ci::warning(&note);
            notes.push(note);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
