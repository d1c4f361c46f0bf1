//! The files the provisioners read (found by `definition::tree`), hashed in parallel,
//! streaming, with SHA-256.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::FingerprintError;
pub use crate::definition::tree::Found;

/// One file as it enters the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileInput {
    /// Relative to the definition directory, `/`-separated.
    pub path: String,
    pub executable: bool,
    pub sha256: String,
}

/// Read buffer per hashing thread: big enough for few syscalls, small enough that memory
/// stays flat whatever the file sizes.
const BUFFER: usize = 256 * 1024;

/// Files at least this big are hashed through memory maps rather than `read`.
const MAP_THRESHOLD: u64 = 4 * 1024 * 1024;
/// A mapped window: mapped pages count as resident memory, so one window at a time per
/// thread keeps memory flat whatever the file size.
const MAP_WINDOW: u64 = 8 * 1024 * 1024;

/// Hashes a big file window by window from the page cache, without copying it into a
/// buffer first (the copy costs as much CPU as a third of the hashing).
fn hash_mapped(file: &File, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut offset = 0;
    while offset < len {
        let size = MAP_WINDOW.min(len - offset);
        // SAFETY: the map is read-only and dropped before the next one. If another process
        // truncates the file meanwhile, reading past its end raises SIGBUS; a definition's
        // files being rewritten during a fingerprint run is outside what the tool supports.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(size as usize)
                .populate()
                .map(file)?
        };
        hasher.update(&map[..]);
        offset += size;
    }
    Ok(())
}

/// Hashes `files` on every core; the result keeps their order. Largest files go first,
/// each thread taking the next from a shared counter, so no core idles while another
/// still has a big file ahead of it.
pub fn hash_all(files: &[Found]) -> Result<Vec<FileInput>, FingerprintError> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].len));
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Vec<(usize, Result<FileInput, FingerprintError>)>> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut buffer = vec![0u8; BUFFER];
                        let mut done = Vec::new();
                        loop {
                            let at = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&index) = order.get(at) else { break };
                            done.push((index, hash_one(&files[index], &mut buffer)));
                        }
                        done
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("hashing threads do not panic"))
                .collect()
        });
    let mut slots: Vec<Option<FileInput>> = vec![None; files.len()];
    for (index, result) in results.into_iter().flatten() {
        slots[index] = Some(result?);
    }
    Ok(slots
        .into_iter()
        .map(|s| s.expect("every file hashed"))
        .collect())
}

fn hash_one(found: &Found, buffer: &mut [u8]) -> Result<FileInput, FingerprintError> {
    let unreadable = |error| FingerprintError::Unreadable {
        path: found.full.clone(),
        error,
    };
    let mut file = File::open(&found.full).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    if found.len >= MAP_THRESHOLD {
        hash_mapped(&file, found.len, &mut hasher).map_err(unreadable)?;
        return Ok(FileInput {
            path: found.rel.clone(),
            executable: found.executable,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    // Reading stops at the size the walk saw: a small file costs one read, not two.
    let mut left = found.len;
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        match file.read(&mut buffer[..want]) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                left -= n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        }
    }
    Ok(FileInput {
        path: found.rel.clone(),
        executable: found.executable,
        sha256: hex::encode(hasher.finalize()),
    })
}
