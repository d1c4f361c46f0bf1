//! SIGINT and SIGTERM, handled from the start of every command.
//!
//! GitHub's runner cancels a step with SIGINT to the step's process, SIGTERM 7.5 s later
//! and SIGKILL 2.5 s after that. Whatever the tool is doing then, its private work
//! directories (which hold secrets) must go and its children must stop:
//! - while a packer run supervises itself (`Supervised`), the signal only raises the
//!   flag: the run interrupts packer, waits for its cleanup and returns, and the work
//!   directory goes with the usual unwinding;
//! - at any other moment, the handler thread removes the registered work directories
//!   and exits with 130. A child still running (`packer validate`, `packer version`)
//!   then gets its death signal (`packer::Packer::command`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use signal_hook::consts::{SIGINT, SIGTERM};

static STOP: AtomicBool = AtomicBool::new(false);
static SUPERVISED: AtomicUsize = AtomicUsize::new(0);
static WORKDIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Installs the handler (once per process; later calls do nothing).
pub fn install() -> std::io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        result = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).and_then(|mut signals| {
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        on_signal(signal);
                    }
                })
                .map(|_| ())
        });
    });
    result
}

fn on_signal(signal: i32) {
    STOP.store(true, Ordering::SeqCst);
    if SUPERVISED.load(Ordering::SeqCst) > 0 {
        return;
    }
    let name = if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    crate::terminal::restore_after_signal();
    eprintln!("uworker-image: {name} received: stopping");
    remove_workdirs();
    std::process::exit(crate::exit::Code::Interrupted as i32);
}

/// Whether SIGINT or SIGTERM has arrived.
pub fn raised() -> bool {
    STOP.load(Ordering::SeqCst)
}

fn remove_workdirs() {
    let dirs = WORKDIRS.lock().unwrap_or_else(|p| p.into_inner());
    for dir in dirs.iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A work directory to remove should the process be stopped by a signal.
pub fn register_workdir(dir: &Path) {
    let mut dirs = WORKDIRS.lock().unwrap_or_else(|p| p.into_inner());
    dirs.push(dir.to_path_buf());
}

pub fn unregister_workdir(dir: &Path) {
    let mut dirs = WORKDIRS.lock().unwrap_or_else(|p| p.into_inner());
    dirs.retain(|d| d != dir);
}

/// While alive, a signal only raises the flag: the holder stops its child itself.
pub struct Supervised(());

impl Supervised {
    pub fn begin() -> Supervised {
        SUPERVISED.fetch_add(1, Ordering::SeqCst);
        Supervised(())
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        SUPERVISED.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_are_registered_until_unregistered() {
        let a = Path::new("/nonexistent/uworker-image-a");
        register_workdir(a);
        assert!(WORKDIRS.lock().unwrap().iter().any(|d| d == a));
        unregister_workdir(a);
        assert!(!WORKDIRS.lock().unwrap().iter().any(|d| d == a));
    }

    #[test]
    fn supervision_nests() {
        let before = SUPERVISED.load(Ordering::SeqCst);
        let outer = Supervised::begin();
        let inner = Supervised::begin();
        assert_eq!(SUPERVISED.load(Ordering::SeqCst), before + 2);
        drop(inner);
        drop(outer);
        assert_eq!(SUPERVISED.load(Ordering::SeqCst), before);
    }
}
