//! The files under a definition's step paths, walked in byte order, with the path rules
//! every command enforces when it loads the definition: links may not leave the root,
//! no link loops, names are UTF-8, and only files and directories.

use std::collections::BTreeMap;
use std::fs::FileType;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TreeError {
    #[error("cannot read {path}")]
    Unreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path} links to {target}, outside {root}: copy the file in, or move the definition")]
    LinkEscapes {
        path: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },
    #[error("{path}: a link loops back to a directory above it")]
    LinkLoop { path: PathBuf },
    #[error("{path}: the file name is not UTF-8; rename it")]
    NotUtf8 { path: PathBuf },
    #[error("{path} is neither a file nor a directory")]
    NotAFile { path: PathBuf },
}

impl crate::exit::Coded for TreeError {
    fn code(&self) -> crate::exit::Code {
        match self {
            TreeError::Unreadable { .. }
            | TreeError::LinkEscapes { .. }
            | TreeError::LinkLoop { .. }
            | TreeError::NotUtf8 { .. }
            | TreeError::NotAFile { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// Every file under `sources` (paths relative to `root`), sorted by path bytes, each once.
pub fn collect(root: &Path, sources: &[&str]) -> Result<Vec<Found>, TreeError> {
    let canonical_root = root.canonicalize().map_err(|error| TreeError::Unreadable {
        path: root.to_path_buf(),
        error,
    })?;
    let mut found = BTreeMap::new();
    for source in sources {
        let rel = source.trim_end_matches('/').to_string();
        let full = root.join(&rel);
        let unreadable = |error| TreeError::Unreadable {
            path: full.clone(),
            error,
        };
        let kind = std::fs::symlink_metadata(&full)
            .map_err(unreadable)?
            .file_type();
        // A link on the way (`files` linking out, the step naming `files/x`) leaves too.
        let target = full.canonicalize().map_err(unreadable)?;
        if !target.starts_with(&canonical_root) {
            return Err(TreeError::LinkEscapes {
                path: full.clone(),
                target,
                root: canonical_root.clone(),
            });
        }
        let walker = Walker {
            canonical_root: &canonical_root,
            root,
        };
        found.extend(walker.visit(rel, kind, &[])?);
    }
    // Byte order of the relative paths, whatever order the file system listed them in.
    Ok(found.into_values().collect())
}

/// The files of `found` that lie at or under one of `sources` (as `collect` was given
/// them): a walk's result narrowed to some of its step paths, without walking again.
pub fn under<'a>(found: &'a [Found], sources: &[&str]) -> Vec<&'a Found> {
    let roots: Vec<&str> = sources.iter().map(|s| s.trim_end_matches('/')).collect();
    found
        .iter()
        .filter(|f| {
            roots.iter().any(|root| {
                f.rel
                    .strip_prefix(root)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        })
        .collect()
}

/// A file found by the walk, with what its listing already told.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub rel: String,
    pub full: PathBuf,
    pub len: u64,
    pub executable: bool,
    /// Device and inode of the file the walk checked: a reader after it can tell that
    /// the name still leads there.
    pub identity: (u64, u64),
}

struct Walker<'a> {
    canonical_root: &'a Path,
    root: &'a Path,
}

impl Walker<'_> {
    /// The files at `rel`; `kind` comes from the directory listing (no extra stat for
    /// plain files and directories). Subdirectories are walked in parallel.
    fn visit(
        &self,
        rel: String,
        kind: FileType,
        ancestors: &[PathBuf],
    ) -> Result<Vec<(String, Found)>, TreeError> {
        let full = self.root.join(&rel);
        let unreadable = |error| TreeError::Unreadable {
            path: full.clone(),
            error,
        };
        if kind.is_symlink() {
            let target = full.canonicalize().map_err(unreadable)?;
            if !target.starts_with(self.canonical_root) {
                return Err(TreeError::LinkEscapes {
                    path: full.clone(),
                    target,
                    root: self.canonical_root.to_path_buf(),
                });
            }
        }
        if !kind.is_dir() {
            // stat follows a link to what it names; one call gives kind, size and mode.
            let meta = std::fs::metadata(&full).map_err(unreadable)?;
            if meta.is_file() {
                let found = Found {
                    rel: rel.clone(),
                    full,
                    len: meta.len(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                    identity: (meta.dev(), meta.ino()),
                };
                return Ok(vec![(rel, found)]);
            }
            if !meta.is_dir() {
                return Err(TreeError::NotAFile { path: full });
            }
        }

        let canonical = full.canonicalize().map_err(unreadable)?;
        if ancestors.contains(&canonical) {
            return Err(TreeError::LinkLoop { path: full.clone() });
        }
        let mut files = Vec::new();
        let mut others = Vec::new();
        for entry in std::fs::read_dir(&full).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let kind = entry.file_type().map_err(unreadable)?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| TreeError::NotUtf8 {
                    path: full.join(name),
                })?;
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if kind.is_file() {
                // Looked up relative to the open directory: one name, not a walk of the
                // whole path (a tenth of the time per small file).
                let meta = entry.metadata().map_err(|error| TreeError::Unreadable {
                    path: entry.path(),
                    error,
                })?;
                let found = Found {
                    rel: child.clone(),
                    full: entry.path(),
                    len: meta.len(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                    identity: (meta.dev(), meta.ino()),
                };
                files.push((child, found));
            } else {
                others.push((child, kind));
            }
        }
        let mut below = ancestors.to_vec();
        below.push(canonical);
        let nested: Vec<Vec<(String, Found)>> = others
            .into_par_iter()
            .map(|(child, kind)| self.visit(child, kind, &below))
            .collect::<Result<_, _>>()?;
        files.extend(nested.into_iter().flatten());
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(rel: &str) -> Found {
        Found {
            rel: rel.into(),
            full: PathBuf::from(rel),
            len: 0,
            executable: false,
            identity: (0, 0),
        }
    }

    #[test]
    fn under_keeps_the_files_at_or_below_the_given_paths() {
        let all: Vec<Found> = ["files/a", "files/dir/b", "files2/c", "scripts/s.sh"]
            .into_iter()
            .map(found)
            .collect();
        let rels = |sources: &[&str]| -> Vec<String> {
            under(&all, sources)
                .into_iter()
                .map(|f| f.rel.clone())
                .collect()
        };
        assert_eq!(rels(&["files/"]), ["files/a", "files/dir/b"]);
        assert_eq!(
            rels(&["files/dir/", "scripts/s.sh"]),
            ["files/dir/b", "scripts/s.sh"]
        );
        assert!(rels(&["file"]).is_empty());
    }

    #[test]
    fn a_link_on_the_way_out_is_named_with_its_target() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("etc")).unwrap();
        let err = collect(root.path(), &["etc/passwd"])
            .unwrap_err()
            .to_string();
        let target = outside.path().canonicalize().unwrap().join("passwd");
        assert!(
            err.contains(&format!("etc/passwd links to {}", target.display())),
            "{err}"
        );
    }
}
