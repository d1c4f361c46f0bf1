//! `render`: the Packer template to stdout, or with its var-file into a directory.

use std::path::Path;

use anyhow::{Context, Result};

use super::stage::{var_file_json, write_worker_config, RunFacts};
use super::Session;
use crate::env::Env;
use crate::exit::Code;
use crate::render::{self, Builders};
use crate::request;
use crate::workdir::write_new;

pub fn run(request: &request::Render, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let text = render::to_text(&render::template(&session.definition, Builders::All));
    match &request.out {
        None => print!("{text}"),
        Some(out) => write_out(&session, out, &text)?,
    }
    Ok(Code::Ok)
}

/// template.json, variables.json (0600) and uworker.conf (0600, when there are worker
/// values): `packer build -var-file=DIR/variables.json DIR/template.json` runs from anywhere.
fn write_out(session: &Session, out: &Path, template: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out = out
        .canonicalize()
        .with_context(|| format!("resolving {}", out.display()))?;
    // Earlier outputs are replaced, never rewritten in place: a fresh 0600 file each time.
    for name in ["template.json", "variables.json", "uworker.conf", "sbom.sh"] {
        match std::fs::remove_file(out.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("replacing {}", out.join(name).display()))
            }
            _ => {}
        }
    }
    let template_path = out.join("template.json");
    write_new(&template_path, template.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", template_path.display()))?;
    // The SBOM script beside them; packer downloads the SBOM there too.
    let sbom_script = if session.definition.writes_sbom() {
        let path = out.join("sbom.sh");
        write_new(&path, crate::sbom::HOST_SCRIPT.as_bytes(), 0o755)
            .with_context(|| format!("writing {}", path.display()))?;
        Some(path)
    } else {
        None
    };
    let facts = RunFacts {
        worker_config_path: write_worker_config(session, &out)?,
        sbom_file: sbom_script
            .as_ref()
            .map(|_| out.join(crate::sbom::FILE_NAME)),
        sbom_script,
        // packer runs later, on its own: from the source itself.
        worker_source_dir: session.definition.worker_source_dir.clone(),
        manifest_file: Some(out.join("packer-manifest.json")),
        ..RunFacts::default()
    };
    let var_file = out.join("variables.json");
    write_new(&var_file, var_file_json(session, &facts)?.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", var_file.display()))?;
    session.info(&format!("wrote {}", template_path.display()));
    session.info(&format!("wrote {} (mode 0600)", var_file.display()));
    if let Some(config) = &facts.worker_config_path {
        session.info(&format!("wrote {} (mode 0600)", config.display()));
    }
    Ok(())
}
