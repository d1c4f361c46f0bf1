//! The shell-like input parsers on their worst cases, as `--worker-config` and `--openrc`
//! read them.
//!
//!     cargo bench --bench shell_parse [-- --enforce]
//!
//! Each case at 64 KiB, 256 KiB and 1 MiB (the input file cap): a quote opened on the
//! first line and never closed, over lines of one character (a parser that re-reads the
//! value per line is quadratic here), and one distinct key per line (quadratic for one
//! that checks each key against all before it). Target: 1 MiB in under 100 ms, i.e.
//! time grows with the size, not its square.

use std::path::Path;
use std::time::{Duration, Instant};

use uworker_image::openstack::openrc;
use uworker_image::seed;

/// `head`, then `line(n)` for n = 0.. while the text stays under `size`, then `tail`.
fn text(size: usize, head: &str, line: impl Fn(usize) -> String, tail: &str) -> String {
    let mut text = head.to_string();
    for n in 0.. {
        let next = line(n);
        if text.len() + next.len() + tail.len() >= size {
            break;
        }
        text.push_str(&next);
    }
    text + tail
}

fn time(parse: impl Fn(&str) -> bool, input: &str) -> Duration {
    let start = Instant::now();
    let refused = parse(input);
    let took = start.elapsed();
    assert!(refused, "every case is bad input");
    took
}

/// One worst case: the parser, and the text's first line, each further line, last line.
struct Case {
    name: &'static str,
    parse: fn(&str) -> bool,
    head: &'static str,
    line: fn(usize) -> String,
    tail: &'static str,
}

fn worker_config_refused(text: &str) -> bool {
    seed::parse_worker_config(text, Path::new("w.conf")).is_err()
}

fn rc_file_refused(text: &str) -> bool {
    openrc::parse(text, Path::new("rc.sh")).is_err()
}

fn main() {
    let enforce = std::env::args().any(|a| a == "--enforce");
    let cases = [
        Case {
            name: "worker config, open quote",
            parse: worker_config_refused,
            head: "export UWORKER_X='",
            line: |_| "a\n".into(),
            tail: "",
        },
        Case {
            name: "RC file, open quote",
            parse: rc_file_refused,
            head: "export OS_PASSWORD=\"",
            line: |_| "a\n".into(),
            tail: "",
        },
        Case {
            name: "worker config, distinct keys",
            parse: worker_config_refused,
            head: "",
            line: |n| format!("export UWORKER_K{n}=1\n"),
            tail: "oops\n",
        },
        Case {
            name: "RC file, distinct keys",
            parse: rc_file_refused,
            head: "",
            line: |n| format!("export OS_K{n}=1\n"),
            tail: "oops\n",
        },
    ];
    let mut ok = true;
    for case in cases {
        let mut row = format!("{:<30}", case.name);
        for size in [64 << 10, 256 << 10, 1 << 20] {
            let input = text(size, case.head, case.line, case.tail);
            let took = time(case.parse, &input);
            row.push_str(&format!(
                " {:>5} KiB {:>8.2} ms",
                size >> 10,
                took.as_secs_f64() * 1e3
            ));
            if size == 1 << 20 && took > Duration::from_millis(100) {
                ok = false;
            }
        }
        println!("{row}");
    }
    println!(
        "  {} 1 MiB in under 100 ms",
        if ok { "PASS" } else { "FAIL" }
    );
    if enforce && !ok {
        std::process::exit(1);
    }
}
