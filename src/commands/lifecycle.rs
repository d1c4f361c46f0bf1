//! The Glance edge of `rollback` and `promote`: a target's images read into the
//! lifecycle's view (src/lifecycle.rs decides), the status changes written back, and what
//! moved printed, as JSON, and in GitHub Actions as the job summary and step outputs.

use std::time::SystemTime;

use anyhow::Result;
use serde::Serialize;

use super::Session;
use crate::ci::Actions;
use crate::definition::Target;
use crate::env::Env;
use crate::error_chain::Chain;
use crate::lifecycle::{
    self, LifecycleError, Status, STATUS_PROPERTY, WITHDRAWN_AT_PROPERTY, WITHDRAWN_BY_PROPERTY,
    WITHDRAWN_REASON_PROPERTY,
};
use crate::openstack::client::Cloud;
use crate::openstack::glance::Glance;
use crate::report::markdown::{code, table};
use crate::request::Output;
use crate::run_marks::stamp;

/// `target`'s images in its cloud, as the lifecycle sees them.
pub(super) fn target_images(
    session: &Session,
    glance: &Glance,
    target: &Target,
) -> Result<Vec<lifecycle::Image>> {
    Ok(glance
        .definition_images(&session.definition.name, Some(&target.name))?
        .into_iter()
        .map(|i| lifecycle::Image {
            status: i.property(STATUS_PROPERTY).map(str::to_string),
            active: i.status == "active",
            name: i.name.unwrap_or_default(),
            id: i.id,
            created_at: i.created_at,
        })
        .collect())
}

/// `--reason`, checked before anything changes: short enough for a Glance property, and no
/// secret's value (it is stored in the cloud and printed).
pub(super) fn check_reason(session: &Session, reason: Option<&str>) -> Result<()> {
    let Some(reason) = reason else {
        return Ok(());
    };
    lifecycle::check_reason(reason)?;
    if session.redactor.redact(reason) != reason {
        return Err(LifecycleError::ReasonHoldsSecret.into());
    }
    Ok(())
}

/// Who asks: the GitHub actor inside Actions, else the local user.
fn who(env: &Env) -> Option<String> {
    match (env.get("GITHUB_ACTOR"), env.get("USER")) {
        (Some(actor), _) => Some(format!("github:{actor}")),
        (None, Some(user)) => Some(user.to_string()),
        (None, None) => None,
    }
}

/// Marks `id` withdrawn: when, by whom and why.
pub(super) fn withdraw(glance: &Glance, id: &str, reason: Option<&str>, env: &Env) -> Result<()> {
    let at = stamp(SystemTime::now());
    let by = who(env);
    let mut properties = vec![
        (STATUS_PROPERTY, Status::Withdrawn.as_str()),
        (WITHDRAWN_AT_PROPERTY, at.as_str()),
    ];
    properties.extend(by.as_deref().map(|by| (WITHDRAWN_BY_PROPERTY, by)));
    properties.extend(reason.map(|reason| (WITHDRAWN_REASON_PROPERTY, reason)));
    glance.set_properties(id, &properties)?;
    Ok(())
}

/// The target's current image after the change, as consumers' query finds it.
pub(super) fn current_now(
    session: &Session,
    cloud: &Cloud,
    target: &Target,
) -> Result<Option<Shown>> {
    Ok(Glance::new(cloud)?
        .current_image(&session.definition.name, &target.name)?
        .map(|i| Shown {
            name: i.name.unwrap_or_default(),
            id: i.id,
            created_at: i.created_at,
        }))
}

/// An image as the outcome names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl From<&lifecycle::Image> for Shown {
    fn from(image: &lifecycle::Image) -> Shown {
        Shown {
            id: image.id.clone(),
            name: image.name.clone(),
            created_at: image.created_at.clone(),
        }
    }
}

impl Shown {
    fn text(&self) -> String {
        format!("{} {} (created {})", self.id, self.name, self.created_at)
    }

    fn markdown(&self) -> String {
        format!(
            "{} {} (created {})",
            code(&self.id),
            code(&self.name),
            self.created_at
        )
    }
}

/// What a rollback or promotion moved (or, with `--dry-run`, would move).
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// `rollback` or `promote`.
    pub command: &'static str,
    pub target: String,
    pub dry_run: bool,
    pub was_current: Option<Shown>,
    /// The image `promote` made current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<Shown>,
    pub withdrawn: Vec<Shown>,
    /// After the change, as the consumers' query finds it (with `--dry-run`: what it
    /// would find).
    pub current: Option<Shown>,
    pub reason: Option<String>,
}

impl Outcome {
    fn lines(&self) -> Vec<String> {
        let (withdrawn, current, promoted) = if self.dry_run {
            ("would withdraw", "would be current", "would promote")
        } else {
            ("withdrawn", "current now", "promoted")
        };
        let none = || "none".to_string();
        let mut lines = vec![format!(
            "{} of target {}{}",
            self.command,
            self.target,
            if self.dry_run { " (dry run)" } else { "" }
        )];
        lines.push(format!(
            "  {:<17} {}",
            "was current:",
            self.was_current.as_ref().map_or_else(none, Shown::text)
        ));
        if let Some(image) = &self.promoted {
            lines.push(format!("  {:<17} {}", format!("{promoted}:"), image.text()));
        }
        for image in &self.withdrawn {
            lines.push(format!(
                "  {:<17} {}",
                format!("{withdrawn}:"),
                image.text()
            ));
        }
        lines.push(format!(
            "  {:<17} {}",
            format!("{current}:"),
            self.current.as_ref().map_or_else(none, Shown::text)
        ));
        if let Some(reason) = &self.reason {
            lines.push(format!("  {:<17} {reason}", "reason:"));
        }
        lines
    }

    /// The job summary's section.
    fn markdown(&self) -> String {
        let none = || "none".to_string();
        let mut rows = vec![(
            "was current",
            self.was_current.as_ref().map_or_else(none, Shown::markdown),
        )];
        if let Some(image) = &self.promoted {
            rows.push(("promoted", image.markdown()));
        }
        for image in &self.withdrawn {
            rows.push(("withdrawn", image.markdown()));
        }
        rows.push((
            "current now",
            self.current.as_ref().map_or_else(none, Shown::markdown),
        ));
        if let Some(reason) = &self.reason {
            // One table row: a line break would end the table.
            rows.push(("reason", reason.replace(['\r', '\n'], " ")));
        }
        format!(
            "### {} of target {}{}\n\n{}\n",
            self.command,
            code(&self.target),
            if self.dry_run { " (dry run)" } else { "" },
            table(&rows)
        )
    }

    /// Prints it (redacted) and, inside GitHub Actions, writes the job summary and the
    /// step outputs `current_image_id` and `withdrawn_image_ids`.
    pub fn print(&self, session: &Session, output: Output, env: &Env) -> Result<()> {
        match output {
            Output::Json => println!(
                "{}",
                session
                    .redactor
                    .redact(&serde_json::to_string_pretty(self)?)
            ),
            Output::Text => {
                for line in self.lines() {
                    println!("{}", session.redactor.redact(&line));
                }
            }
        }
        // The change is made: a summary that cannot be written is a warning, not a failure.
        if let Some(actions) = Actions::detect(env) {
            let withdrawn: Vec<&str> = self.withdrawn.iter().map(|i| i.id.as_str()).collect();
            let written = actions
                .add_summary(&session.redactor.redact(&self.markdown()))
                .and_then(|()| {
                    actions.set_outputs(&[
                        (
                            "current_image_id",
                            self.current
                                .as_ref()
                                .map(|i| i.id.clone())
                                .unwrap_or_default(),
                        ),
                        ("withdrawn_image_ids", withdrawn.join(" ")),
                    ])
                });
            if let Err(error) = written {
                session.info(&format!(
                    "{}: warning: cannot write the job summary or step outputs: {}",
                    self.command,
                    Chain(&error)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(id: &str) -> Shown {
        Shown {
            id: id.into(),
            name: format!("img-t-{id}"),
            created_at: "2026-01-02T00:00:00Z".into(),
        }
    }

    #[test]
    fn an_outcome_names_what_was_current_what_moved_and_what_is_current() {
        let mut outcome = Outcome {
            command: "rollback",
            target: "t".into(),
            dry_run: false,
            was_current: Some(shown("new")),
            promoted: None,
            withdrawn: vec![shown("new")],
            current: Some(shown("old")),
            reason: Some("worker | crashes".into()),
        };
        assert_eq!(
            outcome.lines(),
            [
                "rollback of target t",
                "  was current:      new img-t-new (created 2026-01-02T00:00:00Z)",
                "  withdrawn:        new img-t-new (created 2026-01-02T00:00:00Z)",
                "  current now:      old img-t-old (created 2026-01-02T00:00:00Z)",
                "  reason:           worker | crashes",
            ]
        );
        let markdown = outcome.markdown();
        assert!(
            markdown.starts_with("### rollback of target `t`\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| current now | `old` `img-t-old`"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| reason | worker \\| crashes |"),
            "{markdown}"
        );
        outcome.reason = Some("two\nlines".into());
        let markdown = outcome.markdown();
        assert!(markdown.contains("| reason | two lines |\n"), "{markdown}");
        outcome.reason = Some("worker | crashes".into());

        outcome.dry_run = true;
        outcome.current = None;
        let lines = outcome.lines();
        assert_eq!(lines[0], "rollback of target t (dry run)");
        assert!(lines[2].starts_with("  would withdraw:   new"), "{lines:?}");
        assert_eq!(lines[3], "  would be current: none");
    }

    #[test]
    fn who_asks_is_the_github_actor_else_the_local_user() {
        let env = |pairs: &[(&str, &str)]| {
            Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        };
        assert_eq!(
            who(&env(&[("GITHUB_ACTOR", "octo"), ("USER", "runner")])).as_deref(),
            Some("github:octo")
        );
        assert_eq!(who(&env(&[("USER", "ann")])).as_deref(), Some("ann"));
        assert_eq!(who(&env(&[])), None);
    }
}
