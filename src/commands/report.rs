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
    marker, outputs, release_tag, Baseline, ReportError, Validation, RECORD_ASSET,
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
    publish(&record, validation, env, &redactor)
}

/// What `plan` and `build` do after their own output inside Actions (unless
/// `--no-report`): the same as `report --record` on the record they print.
pub fn after_run(
    record: &Record,
    validation: Validation,
    env: &Env,
    redactor: &Redactor,
) -> Result<Code> {
    publish(record, validation, env, redactor)
}

/// Publishes the record; outputs and the summary are written even when GitHub fails.
pub fn publish(
    record: &Record,
    validation: Validation,
    env: &Env,
    redactor: &Redactor,
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
        let text = markdown::summary(record, &context, validation, &baseline, &[]);
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
            &actions, record, validation, &context, env, redactor, &mut notes,
        )
    };
    let (baseline, result) = match published {
        Ok(baseline) => (baseline, Ok(Code::Ok)),
        Err(error) => {
            notes.push(format!("❌ {}", redactor.redact(&format!("{error:#}"))));
            (Baseline::choose(record, None), Err(error))
        }
    };
    let outputs: Vec<(&str, String)> = outputs(record, &baseline)
        .into_iter()
        .map(|(k, v)| (k, redactor.redact(&v).into_owned()))
        .collect();
    actions
        .set_outputs(&outputs)
        .context("writing GITHUB_OUTPUT")?;
    let summary = markdown::summary(record, &context, validation, &baseline, &notes);
    actions
        .add_summary(&redactor.redact(&summary))
        .context("writing GITHUB_STEP_SUMMARY")?;
    result
}

/// The release or the comment, whichever the event calls for; returns what the inputs
/// were compared with.
fn to_github(
    actions: &Actions,
    record: &Record,
    validation: Validation,
    context: &Context,
    env: &Env,
    redactor: &Redactor,
    notes: &mut Vec<String>,
) -> Result<Baseline> {
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
        return Ok(Baseline::choose(record, None));
    };
    let repository = actions.repository.as_deref().unwrap_or_default();
    let api = env
        .get("GITHUB_API_URL")
        .unwrap_or("https://api.github.com");
    let github = GitHub::new(api, repository, token, retry_settings(env)?)?;
    // The comparison with the latest image is worth a lookup on every event (the
    // `changed` output), but only a failure to publish fails the step.
    let baseline = match latest_baseline(&github, record) {
        Ok(baseline) => baseline,
        Err(error) if !publishes => {
            let why = redactor.redact(&format!("{error:#}")).into_owned();
            ci::warning(&format!("changed inputs unknown: {why}"));
            Baseline::Unavailable(why)
        }
        Err(error) => return Err(error),
    };
    if !publishes {
        notes.push(nothing_to_publish(record, &actions.event));
        return Ok(baseline);
    }
    let redacted = |text: String| redactor.redact(&text).into_owned();
    if release {
        let body = redacted(markdown::release_body(record, context, &baseline));
        publish_release(&github, record, &body, context, notes)?;
    } else if let Some((number, fork)) = pull_request {
        let body = redacted(markdown::pr_comment(record, context, validation, &baseline));
        sticky_comment(&github, env, number, fork, &record.target, &body, notes)?;
    }
    Ok(baseline)
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
fn retry_settings(env: &Env) -> Result<Retry> {
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

/// The target's latest image release (other than this fingerprint's) and its manifest.
fn latest_baseline(github: &GitHub, record: &Record) -> Result<Baseline> {
    let tag = release_tag(&record.fingerprint);
    match github.latest_asset(&marker(&record.target), RECORD_ASSET, &tag) {
        Ok(Some((release, text))) => {
            let label = format!("{RECORD_ASSET} of release {}", release.tag_name);
            // Only its manifest is compared: a record a newer release wrote serves too.
            Ok(match crate::record::read_manifest(&text) {
                Ok(latest) => Baseline::choose(record, Some((release.tag_name, latest))),
                Err(e) => Baseline::Unavailable(
                    Chain(&ReportError::unusable(&label, e.into())).to_string(),
                ),
            })
        }
        Ok(None) => Ok(Baseline::choose(record, None)),
        Err(e) if e.is_forbidden() => Ok(Baseline::Unavailable(format!(
            "the token may not read releases ({})",
            Chain(&e)
        ))),
        Err(e) => Err(e.into()),
    }
}

fn publish_release(
    github: &GitHub,
    record: &Record,
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
    notes.push(format!(
        "{verb} release [{tag}]({}) with `{RECORD_ASSET}`",
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
