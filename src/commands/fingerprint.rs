//! `fingerprint`: the fingerprint of a target, its inputs with `--explain`, the manifest
//! with `--output json`.

use anyhow::Result;

use super::Session;
use crate::env::Env;
use crate::exit::Code;
use crate::fingerprint::Manifest;
use crate::request::{self, Output};

pub fn run(request: &request::Fingerprint, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let target = session.target(request.target.as_deref())?;
    let super::session::Fingerprinted {
        manifest,
        fingerprint,
        ..
    } = session.fingerprint(target)?;
    match request.output {
        Output::Json => {
            let doc = serde_json::json!({ "fingerprint": fingerprint, "manifest": manifest });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            if request.explain {
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
