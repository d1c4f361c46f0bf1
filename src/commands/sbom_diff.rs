//! `sbom-diff OLD NEW`: what changed between two images' SBOMs, as text or JSON.

use anyhow::{Context as _, Result};

use crate::exit::Code;
use crate::request::{Output, SbomDiff};
use crate::sbom::SbomError;

pub fn run(request: &SbomDiff) -> Result<Code> {
    let read = |path: &std::path::Path| -> Result<crate::sbom::Packages> {
        let text =
            crate::input_file::read_text(path, crate::input_file::RECORD_CAP).map_err(|error| {
                SbomError::Read {
                    path: path.to_path_buf(),
                    error,
                }
            })?;
        crate::sbom::read(&text).with_context(|| path.display().to_string())
    };
    let diff = crate::sbom::diff(&read(&request.old)?, &read(&request.new)?);
    let text = match request.output {
        Output::Json => serde_json::to_string_pretty(&diff)? + "\n",
        Output::Text => diff.lines().join("\n") + "\n",
    };
    super::print(text.as_bytes())
}
