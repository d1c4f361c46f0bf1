//! The files a run writes: packer's template and var-file (with the worker config) in a
//! private work dir, `render --out`'s copies of them, and the record (`--out FILE`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use secrecy::{ExposeSecret, SecretString};

use super::Session;
use crate::record::Provenance;
use crate::render::{self as template, Builders, VarKind};
use crate::run_marks;
use crate::vars;
use crate::workdir::{write_new, Workdir};

/// Run-time facts for the var-file that are not inputs of the image.
#[derive(Debug, Default)]
pub struct RunFacts {
    pub worker_config_path: Option<PathBuf>,
    /// Where packer uploads the local `worker_source` from.
    pub worker_source_dir: Option<PathBuf>,
    pub manifest_file: Option<PathBuf>,
    pub fingerprint: Option<String>,
    pub provenance: Provenance,
    /// The ID of the floating IP the seed's variable gives by address (packer takes IDs).
    pub floating_ip_id: Option<String>,
    /// The run's key pair in Nova and its private key (written 0600 into the work dir).
    pub keypair_name: Option<String>,
    pub private_key: Option<SecretString>,
    pub private_key_file: Option<PathBuf>,
    /// When the run will have ended, cleanup included.
    pub deadline: Option<SystemTime>,
    /// The tool's SBOM script and where packer downloads the SBOM (`sbom = true`).
    pub sbom_script: Option<PathBuf>,
    pub sbom_file: Option<PathBuf>,
}

/// Values of every template variable for a run. Holds secrets: write it 0600 only.
pub fn var_file_json(session: &Session, facts: &RunFacts) -> Result<String> {
    let definition_dir = session
        .definition
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", session.definition.dir.display()))?;
    let path_text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let mut values = serde_json::Map::new();
    for var in template::template_variables(&session.definition) {
        let value = match (var.kind, var.name.as_str()) {
            // Worker keys map to lower-case variables; their values are secrets.
            (VarKind::Secret, name) => session
                .inputs
                .worker
                .get(&name.to_ascii_uppercase())
                .map(str::to_string),
            (_, vars::DEFINITION_DIR) => Some(definition_dir.display().to_string()),
            (_, vars::WORKER_SOURCE_DIR) => path_text(&facts.worker_source_dir),
            (_, vars::WORKER_CONFIG_PATH) => path_text(&facts.worker_config_path),
            (_, vars::UPLOAD_DIR) => Some(private_upload_dir()?),
            (_, vars::MANIFEST_FILE) => path_text(&facts.manifest_file),
            (_, vars::SBOM_SCRIPT) => path_text(&facts.sbom_script),
            (_, vars::SBOM_FILE) => path_text(&facts.sbom_file),
            (_, vars::IMAGE_FINGERPRINT) => facts.fingerprint.clone(),
            (_, vars::GIT_COMMIT) => facts.provenance.git_commit.clone(),
            (_, vars::RUN_URL) => facts.provenance.run_url.clone(),
            (_, vars::RUN_ID) => facts.provenance.run_id.clone(),
            (_, vars::RUN_DEADLINE) => facts.deadline.map(run_marks::stamp),
            (_, vars::SSH_KEYPAIR_NAME) => facts.keypair_name.clone(),
            (_, vars::SSH_PRIVATE_KEY_FILE) => path_text(&facts.private_key_file),
            (_, vars::FLOATING_IP) if facts.floating_ip_id.is_some() => {
                facts.floating_ip_id.clone()
            }
            (_, vars::TEST_HOST) => session.inputs.test_host().map(|h| h.host),
            (_, vars::TEST_PORT) => session.inputs.test_host().map(|h| h.port.to_string()),
            // The whole value, URL credentials included (the template's default has none).
            (VarKind::Input, name) if session.inputs.get(name).is_none() => {
                session.definition.variables.get(name).cloned()
            }
            (_, name) => session.inputs.get(name).map(str::to_string),
        };
        values.insert(
            var.name,
            serde_json::Value::String(value.unwrap_or(var.default)),
        );
    }
    Ok(serde_json::to_string_pretty(&serde_json::Value::Object(
        values,
    ))?)
}

/// A new name for the run's private directory on the host: 128 random bits, so no other
/// user there can make it first (the first step's `mkdir` would fail if one did).
fn private_upload_dir() -> Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the run's upload directory name")?;
    Ok(format!("/tmp/uworker-image.{}", hex::encode(bytes)))
}

/// The files packer needs for a run over all builders: template, var-file and worker config.
pub struct Staged {
    pub workdir: Workdir,
    pub template: PathBuf,
    pub var_file: PathBuf,
    /// Where the SBOM lands once packer has run the SBOM step (`sbom = true`).
    pub sbom: Option<PathBuf>,
}

/// Renders `builders` into a private work dir with the var-file; `run` adds the
/// fingerprint and provenance a build stamps on the image.
pub fn stage(session: &Session, builders: Builders, run: RunFacts) -> Result<Staged> {
    let workdir = Workdir::create().context("creating a private work directory")?;
    let text = template::to_text(&template::template(&session.definition, builders));
    let template_path = workdir.write_public("template.json", text.as_bytes())?;
    let worker_config_path = write_worker_config(session, workdir.path())?;
    let private_key_file = match &run.private_key {
        Some(key) => Some(workdir.write_secret("run-key", key.expose_secret().as_bytes())?),
        None => None,
    };
    let sbom_script = if session.definition.writes_sbom() {
        Some(workdir.write_public("sbom.sh", crate::sbom::HOST_SCRIPT.as_bytes())?)
    } else {
        None
    };
    let sbom_file = sbom_script
        .as_ref()
        .map(|_| workdir.path().join(crate::sbom::FILE_NAME));
    let facts = RunFacts {
        worker_config_path,
        sbom_script,
        sbom_file: sbom_file.clone(),
        // The private copy the fingerprint hashed, never the source itself.
        worker_source_dir: session.worker_source.as_ref().map(|s| s.dir()),
        manifest_file: Some(workdir.path().join("packer-manifest.json")),
        private_key_file,
        ..run
    };
    let var_file =
        workdir.write_secret("variables.json", var_file_json(session, &facts)?.as_bytes())?;
    Ok(Staged {
        workdir,
        template: template_path,
        var_file,
        sbom: sbom_file,
    })
}

/// Writes the generated worker config (0600) into `dir`; None when there are no values.
pub fn write_worker_config(session: &Session, dir: &Path) -> Result<Option<PathBuf>> {
    if session.inputs.worker.is_empty() {
        return Ok(None);
    }
    let path = dir.join("uworker.conf");
    let content = session.inputs.worker.config_file();
    crate::workdir::write_new(&path, content.expose_secret().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

/// The SBOM packer brought back from the host, and what the record says of it.
pub struct Sbom {
    pub text: String,
    pub file: crate::record::SbomFile,
}

/// The SBOM the run's `sbom = true` step downloaded, read before the work dir goes; None
/// for a definition without the step.
pub fn downloaded_sbom(staged: &Staged) -> Option<Result<Sbom>> {
    let path = staged.sbom.as_ref()?;
    let read = || -> Result<Sbom> {
        let text =
            crate::input_file::read_text(path, crate::input_file::RECORD_CAP).map_err(|error| {
                crate::sbom::SbomError::Read {
                    path: path.clone(),
                    error,
                }
            })?;
        let (sha256, packages) = crate::sbom::describe(&text)?;
        Ok(Sbom {
            text,
            file: crate::record::SbomFile {
                file: crate::sbom::FILE_NAME.to_string(),
                sha256,
                packages,
            },
        })
    };
    Some(read())
}

/// The SBOM next to the record (`--out FILE`), replacing an earlier one; it holds no
/// secret, so it is world-readable as the record is.
pub fn write_sbom(record: &Path, sbom: &Sbom) -> Result<PathBuf> {
    let path = record.with_file_name(&sbom.file.file);
    let _ = std::fs::remove_file(&path);
    write_new(&path, sbom.text.as_bytes(), 0o644)
        .with_context(|| format!("writing the SBOM to {}", path.display()))?;
    Ok(path)
}

/// A plan or build record (`--out FILE`), replacing an earlier one. It holds no secret
/// values (the manifest names secrets, never their values), so it is world-readable.
pub fn write_record(path: &Path, json: &str) -> Result<()> {
    let _ = std::fs::remove_file(path);
    write_new(path, format!("{json}\n").as_bytes(), 0o644)
        .with_context(|| format!("writing the record to {}", path.display()))?;
    Ok(())
}
