//! Reading a password on the controlling terminal, as ssh and sudo do: `/dev/tty`, not
//! stdin/stdout, so it works with output redirected to files, and fails at once when the
//! process has no terminal (CI, cron, setsid) instead of waiting for input that cannot
//! come.
//!
//! The terminal is put in a raw-ish mode (no echo, no line editing, no signal keys) and
//! the keys are read one by one: Ctrl-C arrives as a byte, so the prompt ends as
//! "interrupted" and the settings are restored on that path too, rather than a SIGINT
//! ending the process with echo off. A SIGTERM from elsewhere restores them as well
//! (`restore_after_signal`, called by the signal handler before it exits).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use secrecy::SecretString;

/// What reading the password on the terminal can come to.
#[derive(Debug)]
pub enum Prompted {
    Password(SecretString),
    /// The process has no controlling terminal.
    NoTerminal,
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D (or end of input) before any character.
    Eof,
    Failed(std::io::Error),
}

/// The settings to put back should a signal end the process mid-prompt.
static SAVED: Mutex<Option<(i32, libc::termios)>> = Mutex::new(None);

const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const CTRL_U: u8 = 0x15;
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;

/// Shows `prompt` on the controlling terminal and reads a line without echo.
pub fn read_password(prompt: &str) -> Prompted {
    let tty = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/tty")
    {
        Ok(tty) => tty,
        // ENXIO: no controlling terminal; anything else also means none to use.
        Err(_) => return Prompted::NoTerminal,
    };
    let Some(guard) = Quiet::enter(&tty) else {
        return Prompted::NoTerminal;
    };
    let result = ask(&tty, prompt);
    drop(guard);
    // The typed Enter was not echoed: end the prompt's line.
    let _ = (&tty).write_all(b"\n");
    match result {
        Ok(prompted) => prompted,
        Err(e) => Prompted::Failed(e),
    }
}

fn ask(mut tty: &File, prompt: &str) -> std::io::Result<Prompted> {
    tty.write_all(prompt.as_bytes())?;
    tty.flush()?;
    let mut typed: Vec<u8> = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte) {
            Ok(0) => return Ok(finish(typed, true)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match byte[0] {
            b'\r' | b'\n' => return Ok(finish(typed, false)),
            CTRL_C => return Ok(Prompted::Interrupted),
            CTRL_D if typed.is_empty() => return Ok(Prompted::Eof),
            CTRL_D => {}
            CTRL_U => typed.clear(),
            BACKSPACE | DELETE => pop_char(&mut typed),
            other => typed.push(other),
        }
    }
}

fn finish(typed: Vec<u8>, eof: bool) -> Prompted {
    if eof && typed.is_empty() {
        return Prompted::Eof;
    }
    Prompted::Password(SecretString::from(
        String::from_utf8_lossy(&typed).into_owned(),
    ))
}

/// Removes the last UTF-8 character (a continuation byte is 0b10xxxxxx).
fn pop_char(typed: &mut Vec<u8>) {
    while let Some(byte) = typed.pop() {
        if byte & 0xC0 != 0x80 {
            break;
        }
    }
}

/// The terminal without echo, line editing or signal keys while alive.
struct Quiet {
    fd: i32,
    saved: libc::termios,
}

impl Quiet {
    fn enter(tty: &File) -> Option<Quiet> {
        let fd = tty.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
        quiet.c_cc[libc::VMIN] = 1;
        quiet.c_cc[libc::VTIME] = 0;
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((fd, saved));
        // TCSAFLUSH drops keys typed before the prompt, as sudo does.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
            return None;
        }
        Some(Quiet { fd, saved })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        // SAFETY: fd is the open /dev/tty the guard was made from.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
        SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Puts the terminal back if a prompt is showing; for the signal handler, which exits.
pub fn restore_after_signal() {
    let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((fd, termios)) = saved {
        // SAFETY: the fd stays open while SAVED holds it (the guard clears it first).
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &termios) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backspace_removes_whole_characters() {
        let mut typed = "pé".as_bytes().to_vec();
        pop_char(&mut typed);
        assert_eq!(typed, b"p");
        pop_char(&mut typed);
        pop_char(&mut typed);
        assert!(typed.is_empty());
    }
}
