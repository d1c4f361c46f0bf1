//! `fingerprint`: the fingerprint of a target, its inputs with `--explain`, the manifest
//! with `--output json`.

use anyhow::Result;

use super::Session;
use crate::cli::{FingerprintArgs, Global, Output};
use crate::env::Env;
use crate::exit::Code;
use crate::fingerprint::Manifest;

pub fn run(global: &Global, args: &FingerprintArgs, env: &Env) -> Result<Code> {
    let session = Session::load(global, env)?;
    let target = session.definition.select_target(global.target.as_deref())?;
    let packer = session.packer(global)?;
    let cloud = session.connect()?;
    let base = session.resolve_base_image(target, cloud.as_ref())?;
    let manifest = session.manifest(target, &packer, base.as_ref())?;
    let fingerprint = manifest.fingerprint();
    match global.output {
        Output::Json => {
            let doc = serde_json::json!({ "fingerprint": fingerprint, "manifest": manifest });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            if args.explain {
                print!("{}", explain(&manifest));
            }
            println!("{fingerprint}");
        }
    }
    Ok(Code::Ok)
}

/// Every input with its digest, aligned, one per line.
pub fn explain(manifest: &Manifest) -> String {
    let inputs = manifest.inputs();
    let width = inputs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!(
        "inputs of image `{}`, target `{}`:\n",
        manifest.image, manifest.target
    );
    for (name, digest) in inputs {
        out.push_str(&format!("  {name:<width$}  {digest}\n"));
    }
    out
}
