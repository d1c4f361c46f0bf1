//! `schema`: the JSON Schema of the record (`plan --output json`, `build --out`, the
//! release asset `image.json`), derived from the type itself so it cannot drift.

use anyhow::Result;

use crate::exit::Code;

pub fn run() -> Result<Code> {
    let schema = serde_json::to_string_pretty(&crate::record::json_schema())?;
    super::print(format!("{schema}\n").as_bytes())
}
