//! The helpers of the fast tier: those both tiers share (tests/common), the packer
//! stand-in every run of the tool gets here, and file modes.

#[path = "../../common/mod.rs"]
mod shared;
pub use shared::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What every run of the tool gets in this tier (`tool`): the packer stand-in, the git
/// stand-in (`plan` pins a git `worker_source` with `git ls-remote`; the default
/// definition's is on github.com, which this tier never reaches), a package index where
/// nothing listens (never PyPI), and a cache directory
/// of its own for the version packer reports (not the user's ~/.cache).
pub const TOOL_ENV: &[(&str, &str)] = &[
    (
        "UWORKER_IMAGE_PACKER",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packer-1.6.6"),
    ),
    (
        "UWORKER_IMAGE_GIT",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/git-ls-remote"),
    ),
    // A requirement without `==` is pinned against this index: nothing listens there, so
    // no test reaches PyPI (one that means to pin serves its own index).
    ("UWORKER_IMAGE_INDEX_URL", "http://127.0.0.1:9/simple/"),
    (
        "XDG_CACHE_HOME",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/cache"),
    ),
];

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The text of a definition named `$name` whose one target, `t`, builds from image
/// `base-id` with flavor `f`, then `$rest` (more keys of the target, its steps, other
/// tables): the definition most tests here start from, written once. A `&'static str`.
#[macro_export]
macro_rules! definition_with_target_t {
    ($name:literal, $rest:literal) => {
        concat!(
            "name = \"",
            $name,
            "\"\n[target.t]\nsource_image = \"base-id\"\nflavor = \"f\"\n",
            $rest
        )
    };
}
