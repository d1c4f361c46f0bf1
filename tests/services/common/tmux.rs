//! A private tmux server: a real terminal for a command, keys typed into it, and the
//! screen read back, as a person at the keyboard would see it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Tmux {
    dir: TempDir,
}

impl Tmux {
    /// Starts a server on its own socket with `shell_command` in a 200x50 pane.
    pub fn start(shell_command: &str) -> Tmux {
        let tmux = Tmux {
            dir: tempfile::tempdir().unwrap(),
        };
        let ok = tmux
            .command()
            .args(["new-session", "-d", "-x", "200", "-y", "50", shell_command])
            .status()
            .expect("tmux runs (scripts/setup.sh installs it)")
            .success();
        assert!(ok, "tmux new-session failed");
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(self.socket()).args(["-f", "/dev/null"]);
        cmd
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// Types `text` literally (no key names).
    pub fn type_text(&self, text: &str) {
        assert!(self
            .command()
            .args(["send-keys", "-t", "0", "-l", text])
            .status()
            .unwrap()
            .success());
    }

    /// Presses keys by tmux name: "Enter", "C-c".
    pub fn press(&self, key: &str) {
        assert!(self
            .command()
            .args(["send-keys", "-t", "0", key])
            .status()
            .unwrap()
            .success());
    }

    /// The pane's text, scrollback included.
    pub fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane shows `needle`; panics with the screen after `timeout`.
    pub fn wait_for_screen(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "the pane never showed {needle:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

/// Waits for a file a pane command writes at its end; its trimmed content.
pub fn wait_for_file(path: &Path, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().to_string();
            }
        }
        assert!(
            start.elapsed() < timeout,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
