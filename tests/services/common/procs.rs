//! The machine's processes as /proc shows them, and signals sent by kill(2) itself: the
//! kill(1) command reads a negative PID (a process group) as an option, and one such
//! call once became kill(-1, SIGKILL), the end of every process on the machine.

/// One line of /proc/PID/stat, the fields the tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

/// `pid`'s stat; None when it is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    parse(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

fn parse(pid: i32, text: &str) -> Option<Stat> {
    // The command name is in parentheses and may itself hold spaces and `)`.
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut number = || fields.next()?.parse().ok();
    Some(Stat {
        pid,
        comm,
        state,
        ppid: number()?,
        pgrp: number()?,
        session: number()?,
    })
}

/// Every live (not zombie) process of the machine.
pub fn all() -> Vec<Stat> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(stat)
        .filter(|s| s.state != 'Z')
        .collect()
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// kill(2) of one process (`pid` > 1) or of one process group (`pid` < -1); never of
/// "every process" (-1) or of the caller's own group (0).
pub fn signal(pid: i32, signal: libc::c_int) -> std::io::Result<()> {
    assert!(!(-1..=1).contains(&pid), "refusing kill({pid}, {signal})");
    // SAFETY: kill(2) with a PID or group the assertion above bounds.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
