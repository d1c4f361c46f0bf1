//! Packer output through parse + redact + print, as `build` and `test` handle it.
//!
//!     cargo bench --bench redact_stream [-- --lines 1000000 --enforce]
//!
//! Feeds generated machine-readable lines (ui say/message lines of build output, some
//! carrying one of 10 secrets, some with escaped commas and line breaks) to the same
//! printer the runner uses, writing to /dev/null. Targets: >= 500,000 lines/s and peak
//! RSS < 32 MiB (nothing may grow with the output's length).

use std::io::BufWriter;
use std::time::Instant;

use anyhow::{Context, Result};
use uworker_image::packer::run::Printer;
use uworker_image::secrets::Redactor;

fn secrets() -> Vec<String> {
    (0..10)
        .map(|i| match i % 3 {
            0 => format!("p@ss-{i}-with, comma"),
            1 => format!("tok_{i}_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
            _ => format!("multi {i}\nline secret"),
        })
        .collect()
}

/// The n-th line of a plausible build log; every 50th carries a secret.
fn line(n: u64, secrets: &[String], buf: &mut String) {
    use std::fmt::Write;
    buf.clear();
    let ts = 1_795_546_070 + n / 1000;
    match n % 5 {
        0 => write!(buf, "{ts},,ui,say,==> smog: Provisioning with shell script: scripts/{}.sh", n % 7),
        1 => write!(buf, "{ts},,ui,message,    smog: Get:{n} http://archive.ubuntu.com/ubuntu jammy/main amd64 libfoo{n} [{n} kB]"),
        2 => write!(buf, "{ts},,ui,message,    smog: Setting up python3-venv%!(PACKER_COMMA) version {n}.0 ..."),
        3 => write!(buf, "{ts},,ui,error,    smog: WARNING: apt does not have a stable CLI interface\\n    smog: line {n}"),
        _ => write!(buf, "{ts},,ui,message,    smog: pip: Collecting requests>=2.{n} (from uworker==1.0)"),
    }
    .expect("writing to a String");
    if n % 50 == 0 {
        let secret = &secrets[(n / 50) as usize % secrets.len()];
        let escaped = secret.replace(',', "%!(PACKER_COMMA)").replace('\n', "\\n");
        buf.push_str(" value=");
        buf.push_str(&escaped);
    }
}

/// This process's peak RSS (VmHWM). Not getrusage: its maximum survives execve, so
/// under `cargo bench` it would report cargo's own peak.
fn peak_rss_kib() -> Result<i64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}

fn main() -> Result<()> {
    let mut lines: u64 = 1_000_000;
    let mut enforce = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lines" => lines = args.next().context("--lines N")?.parse()?,
            "--enforce" => enforce = true,
            _ => {} // --bench from cargo
        }
    }
    let secrets = secrets();
    let redactor = Redactor::new(secrets.iter().map(String::as_str));
    let sink = BufWriter::new(std::fs::OpenOptions::new().write(true).open("/dev/null")?);
    let mut printer = Printer::new(sink, &redactor, true);
    let mut buf = String::new();
    let start = Instant::now();
    for n in 0..lines {
        line(n, &secrets, &mut buf);
        printer.packer_line(&buf);
    }
    printer.end_group();
    let secs = start.elapsed().as_secs_f64();
    let rate = lines as f64 / secs;
    let rss = peak_rss_kib()? as f64 / 1024.0;
    println!("{lines} lines, 10 secrets: {secs:.3} s, {rate:.0} lines/s, peak RSS {rss:.1} MiB");
    let ok_rate = rate >= 500_000.0;
    let ok_rss = rss < 32.0;
    println!(
        "  {} >= 500,000 lines/s",
        if ok_rate { "PASS" } else { "FAIL" }
    );
    println!(
        "  {} peak RSS < 32 MiB",
        if ok_rss { "PASS" } else { "FAIL" }
    );
    if enforce && !(ok_rate && ok_rss) {
        std::process::exit(1);
    }
    Ok(())
}
