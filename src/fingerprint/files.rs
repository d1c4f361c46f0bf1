//! The files the provisioners read: walked in byte order under the definition directory
//! (links may not leave it), then hashed in parallel, streaming, with SHA-256.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::FingerprintError;

/// One file as it enters the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInput {
    /// Relative to the definition directory, `/`-separated.
    pub path: String,
    pub executable: bool,
    pub sha256: String,
}

/// Read buffer per hashing thread: big enough for few syscalls, small enough that memory
/// stays flat whatever the file sizes.
const BUFFER: usize = 256 * 1024;

/// Every file under `sources` (paths relative to `root`), sorted by path bytes, each once.
pub fn collect(root: &Path, sources: &[&str]) -> Result<Vec<(String, PathBuf)>, FingerprintError> {
    let canonical_root = root
        .canonicalize()
        .map_err(|source| FingerprintError::Unreadable {
            path: root.to_path_buf(),
            source,
        })?;
    let mut found = BTreeMap::new();
    for source in sources {
        let rel = source.trim_end_matches('/');
        let mut ancestors = Vec::new();
        walk(&canonical_root, root, rel, &mut ancestors, &mut found)?;
    }
    Ok(found.into_iter().collect())
}

fn walk(
    canonical_root: &Path,
    root: &Path,
    rel: &str,
    ancestors: &mut Vec<PathBuf>,
    found: &mut BTreeMap<String, PathBuf>,
) -> Result<(), FingerprintError> {
    let full = root.join(rel);
    let unreadable = |source| FingerprintError::Unreadable {
        path: full.clone(),
        source,
    };
    let link_meta = std::fs::symlink_metadata(&full).map_err(unreadable)?;
    let real = if link_meta.file_type().is_symlink() {
        let target = full.canonicalize().map_err(unreadable)?;
        if !target.starts_with(canonical_root) {
            return Err(FingerprintError::LinkEscapes {
                path: full.clone(),
                target,
            });
        }
        target
    } else {
        full.clone()
    };
    let meta = std::fs::metadata(&real).map_err(unreadable)?;
    if meta.is_dir() {
        let canonical = real.canonicalize().map_err(unreadable)?;
        if ancestors.contains(&canonical) {
            return Err(FingerprintError::LinkLoop { path: full.clone() });
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&full).map_err(unreadable)? {
            let name = entry.map_err(unreadable)?.file_name();
            let name = name
                .into_string()
                .map_err(|name| FingerprintError::NotUtf8 {
                    path: full.join(name),
                })?;
            names.push(name);
        }
        // Byte order, whatever order the file system lists them in.
        names.sort_unstable();
        ancestors.push(canonical);
        for name in names {
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            walk(canonical_root, root, &child, ancestors, found)?;
        }
        ancestors.pop();
    } else if meta.is_file() {
        found.insert(rel.to_string(), full);
    } else {
        return Err(FingerprintError::NotAFile { path: full });
    }
    Ok(())
}

/// Hashes `files` on all cores; the result keeps their order.
pub fn hash_all(files: &[(String, PathBuf)]) -> Result<Vec<FileInput>, FingerprintError> {
    files
        .par_iter()
        .map_init(
            || vec![0u8; BUFFER],
            |buffer, (rel, full)| hash_one(rel, full, buffer),
        )
        .collect()
}

fn hash_one(rel: &str, full: &Path, buffer: &mut [u8]) -> Result<FileInput, FingerprintError> {
    let unreadable = |source| FingerprintError::Unreadable {
        path: full.to_path_buf(),
        source,
    };
    let mut file = File::open(full).map_err(unreadable)?;
    let executable = file.metadata().map_err(unreadable)?.permissions().mode() & 0o111 != 0;
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        }
    }
    Ok(FileInput {
        path: rel.to_string(),
        executable,
        sha256: hex::encode(hasher.finalize()),
    })
}
