//! The fast tier: every test that needs nothing beyond Rust (no root, no services, no
//! packer, shellcheck, actionlint, sshd or node). `cargo test` runs it.
//!
//! The tool runs here with a packer stand-in that answers `version` as packer 1.6.6 does
//! (tests/fixtures/packer-1.6.6): `fingerprint` and `plan` need packer's version, never
//! packer itself. Whatever needs the real packer or another installed tool or service is
//! in tests/services (`cargo test --features services`, which scripts/test.sh runs).

mod common;

mod architecture;
mod completions;
mod definition_paths;
mod docs_links;
mod errors;
mod fingerprint;
mod help;
mod parsers_fuzz;
mod pins;
mod render;
mod report;
mod sbom_diff;
mod secrets;
mod untrusted_input;
mod worker_source;
mod workflows;
