//! `uworker-image fingerprint` on a big definition, against coreutils and openssl.
//!
//!     cargo bench --bench fingerprint_tree [-- --small 20000 --large 4 --large-mib 128
//!                                            --runs 5 --keep DIR --enforce]
//!
//! Builds a definition whose `file` step uploads N small files (0.5-8 KiB) and L large
//! ones, warms the page cache, then times (median of --runs) the tool, (a) `sha256sum`
//! over the sorted file list, (b) `openssl dgst -sha256` (SHA-NI) the same way, and the
//! tool on the large files alone. Peak RSS comes from wait4 for each tool run. Targets:
//! tool <= 0.25 x (a), <= 0.5 x (b), large files >= 2.5 GB/s, peak RSS < 64 MiB.

use std::io::{BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const DEFINITION: &str = r#"name = "bench"
[target.bench]
source_image = "00000000-0000-0000-0000-000000000000"
flavor = "m1.small"
ssh_username = "ubuntu"
[[provision]]
file = "payload/"
destination = "/opt/payload"
[worker]
required = []
"#;

struct Options {
    small: usize,
    large: usize,
    large_mib: usize,
    runs: usize,
    keep: Option<PathBuf>,
    enforce: bool,
}

fn options() -> Result<Options> {
    let mut o = Options {
        small: 20_000,
        large: 4,
        large_mib: 128,
        runs: 5,
        keep: None,
        enforce: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || -> Result<usize> {
            let v = args
                .next()
                .with_context(|| format!("{arg} needs a value"))?;
            v.parse()
                .with_context(|| format!("{arg} {v}: not a number"))
        };
        match arg.as_str() {
            "--small" => o.small = number()?,
            "--large" => o.large = number()?,
            "--large-mib" => o.large_mib = number()?,
            "--runs" => o.runs = number()?.max(1),
            "--keep" => o.keep = Some(args.next().context("--keep needs a directory")?.into()),
            "--enforce" => o.enforce = true,
            "--bench" => {} // passed by cargo bench
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

/// Deterministic bytes: xorshift64 seeded per file.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// The full definition (`all/`) and one with the large files only (`large/`, hard links).
fn build_tree(root: &Path, o: &Options) -> Result<()> {
    let stamp = root.join(format!("built-{}-{}-{}", o.small, o.large, o.large_mib));
    if stamp.exists() {
        return Ok(());
    }
    let all = root.join("all/payload");
    let large_only = root.join("large/payload");
    for dir in [&all, &large_only] {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(root.join("all/image.toml"), DEFINITION)?;
    std::fs::write(root.join("large/image.toml"), DEFINITION)?;
    let mut buf = vec![0u8; 8192];
    for i in 0..o.small {
        let dir = all.join(format!("d{:03}", i / 100));
        std::fs::create_dir_all(&dir)?;
        let len = 512 + (i * 7919) % (8192 - 512 + 1);
        fill(&mut buf[..len], i as u64);
        std::fs::write(dir.join(format!("f{i:05}.bin")), &buf[..len])?;
    }
    let mut chunk = vec![0u8; 1 << 20];
    for j in 0..o.large {
        let path = all.join(format!("large{j}.bin"));
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        for k in 0..o.large_mib {
            fill(&mut chunk, (j * 1_000_003 + k) as u64);
            w.write_all(&chunk)?;
        }
        w.flush()?;
        std::fs::hard_link(&path, large_only.join(format!("large{j}.bin")))?;
    }
    std::fs::write(stamp, "")?;
    Ok(())
}

/// Reads every file once so all contenders start from a warm page cache.
fn warm(dir: &Path) -> Result<(usize, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let (f, b) = warm(&path)?;
            files += f;
            bytes += b;
        } else {
            bytes += std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// Runs `cmd`, returning wall time and the child's peak RSS in KiB (wait4's rusage).
fn measure(mut cmd: Command) -> Result<(Duration, i64, String)> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn")?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.context("stdout")?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; status and usage are valid pointers.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if reaped != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let exit = std::process::ExitStatus::from_raw(status);
    if !exit.success() {
        bail!("{cmd:?} failed: {exit}");
    }
    Ok((elapsed, usage.ru_maxrss, out))
}

fn tool(def: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uworker-image"));
    for (key, _) in std::env::vars() {
        if key.starts_with("UWORKER_") || key.starts_with("OS_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(def)
        .args(["--dir", ".", "fingerprint", "--target", "bench"]);
    cmd
}

fn shell(dir: &Path, pipeline: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir).arg("-c").arg(pipeline);
    cmd
}

/// Median wall time and max peak RSS over `runs`; checks the tool's output each time.
fn series(runs: usize, make: impl Fn() -> Command, is_tool: bool) -> Result<(f64, i64)> {
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        let (elapsed, rss, out) = measure(make())?;
        if is_tool {
            let last = out.lines().last().unwrap_or("");
            if !(last.starts_with("sha256:") && last.len() == 71) {
                bail!("the tool printed no fingerprint: {out:?}");
            }
        }
        times.push(elapsed.as_secs_f64());
        peak = peak.max(rss);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], peak))
}

fn main() -> Result<()> {
    let o = options()?;
    let temp;
    let root = match &o.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    eprintln!("building the tree in {} ...", root.display());
    build_tree(&root, &o)?;
    let all = root.join("all");
    let large = root.join("large");
    let (files, bytes) = warm(&all.join("payload"))?;
    let large_bytes = (o.large * o.large_mib) as f64 * 1_048_576.0;
    println!(
        "tree: {files} files, {:.0} MB ({} large files of {} MiB)",
        bytes as f64 / 1e6,
        o.large,
        o.large_mib
    );

    // One untimed run fills the tool's packer-version cache, as any earlier run would.
    measure(tool(&all))?;
    let (t_tool, rss_tool) = series(o.runs, || tool(&all), true)?;
    let (t_large, rss_large) = series(o.runs, || tool(&large), true)?;
    let payload = all.join("payload");
    let (t_a, _) = series(
        o.runs,
        || {
            shell(
                &payload,
                "find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum",
            )
        },
        false,
    )?;
    let (t_b, _) = series(
        o.runs,
        || {
            shell(&payload, "find . -type f -print0 | sort -z | xargs -0 -n 5000 openssl dgst -sha256 | sha256sum")
        },
        false,
    )?;

    let gbps = large_bytes / t_large / 1e9;
    let peak_mib = rss_tool.max(rss_large) as f64 / 1024.0;
    let checks = [
        ("tool <= 0.25 x (a)", t_tool <= 0.25 * t_a),
        ("tool <= 0.5 x (b)", t_tool <= 0.5 * t_b),
        ("large files >= 2.5 GB/s", gbps >= 2.5),
        ("peak RSS < 64 MiB", peak_mib < 64.0),
    ];
    println!(
        "median of {} runs, warm page cache, {} cores",
        o.runs,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("  uworker-image fingerprint      {t_tool:8.3} s");
    println!(
        "  (a) sha256sum pipeline          {t_a:8.3} s   tool/(a) = {:.3}",
        t_tool / t_a
    );
    println!(
        "  (b) openssl dgst pipeline       {t_b:8.3} s   tool/(b) = {:.3}",
        t_tool / t_b
    );
    println!("  large files only               {t_large:8.3} s   {gbps:.2} GB/s");
    println!("  peak RSS (tool)                {peak_mib:8.1} MiB");
    let mut failed = false;
    for (name, ok) in checks {
        println!("  {:4} {name}", if ok { "PASS" } else { "FAIL" });
        failed |= !ok;
    }
    if failed && o.enforce {
        std::process::exit(1);
    }
    Ok(())
}
