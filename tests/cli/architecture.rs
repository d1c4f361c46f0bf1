//! Imports flow one way: no cycle between the top-level modules of src/. A module under
//! `src/x/` counts as `x` (a parent and its children may use each other); an edge is a
//! `crate::x` path in code, `use` or not, outside comments and string literals. On a
//! cycle the test prints it with the file and line of each edge, so the import to move
//! is found at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where one module first uses another: `src/file.rs:line`.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// The source with comments, string and character literals blanked (newlines kept, so
/// lines still count).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            // Block comments nest.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest) {
            // r"..." or r#"..."#: no escapes, ends at the quote and as many hashes.
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let open = hashes + 2;
            out.extend(std::iter::repeat_n(' ', open));
            i += open;
            while i < chars.len() && !chars[i..].starts_with(&close) {
                out.push(blank(chars[i]));
                i += 1;
            }
            out.extend(std::iter::repeat_n(' ', close.len()));
            i += close.len();
        } else if chars[i] == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if chars[i] == '\'' && is_char_literal(rest) {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The number of `#`s of a raw string starting here (`r"`, `r#"`, `br"`...), if one does.
fn raw_string_start(rest: &[char]) -> Option<usize> {
    let rest = rest.strip_prefix(&['b']).unwrap_or(rest);
    let rest = rest.strip_prefix(&['r'])?;
    let hashes = rest.iter().take_while(|c| **c == '#').count();
    (rest.get(hashes) == Some(&'"')).then_some(hashes)
}

/// `'x'` or `'\n'`, not a lifetime (`'a`).
fn is_char_literal(rest: &[char]) -> bool {
    match rest.get(1) {
        Some('\\') => true,
        Some(_) => rest.get(2) == Some(&'\''),
        None => false,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Each top-level module a file's code names through `crate::`, with the line.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let line_at = |i: usize| chars[..i].iter().filter(|c| **c == '\n').count() + 1;
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let ident_at = |i: usize| -> String {
        chars[i..]
            .iter()
            .take_while(|c| is_ident(**c))
            .collect::<String>()
    };
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = find(&chars, i, "crate") {
        i = at + 5;
        let before = at.checked_sub(1).map(|b| chars[b]);
        if before.is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
            continue;
        }
        let after = skip_space(i);
        if !chars[after..].starts_with(&[':', ':']) {
            continue;
        }
        let start = skip_space(after + 2);
        if chars.get(start) != Some(&'{') {
            found.push((ident_at(start), line_at(start)));
            continue;
        }
        // `crate::{a, b::{c, d}, e}`: the first name of each item at the outer level.
        let mut depth = 0;
        let mut item_start = true;
        let mut j = start;
        while j < chars.len() {
            match chars[j] {
                '{' => {
                    depth += 1;
                    if depth == 1 {
                        item_start = true;
                    }
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => item_start = true,
                c if depth == 1 && item_start && is_ident(c) => {
                    found.push((ident_at(j), line_at(j)));
                    item_start = false;
                }
                _ => {}
            }
            j += 1;
        }
        i = j;
    }
    found
}

fn find(chars: &[char], from: usize, word: &str) -> Option<usize> {
    let word: Vec<char> = word.chars().collect();
    (from..chars.len().saturating_sub(word.len() - 1)).find(|&i| chars[i..].starts_with(&word))
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to; None for lib.rs and main.rs.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Every edge between top-level modules of `src`, each with where it is first seen.
fn module_graph(src: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges = Edges::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for (to, line) in crate_paths(&code) {
            if to != from && modules.contains(&to) {
                let shown = file.strip_prefix(src.parent().unwrap()).unwrap();
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{}:{line}", shown.display()));
            }
        }
        edges.entry(from).or_default();
    }
    edges
}

/// Each group of modules that reach one another (Tarjan's strongly connected components),
/// sorted, with one cycle through it (the first module again at the end).
fn cycles(edges: &Edges) -> Vec<(Vec<String>, Vec<String>)> {
    struct Walk<'e> {
        edges: &'e Edges,
        index: BTreeMap<&'e str, usize>,
        low: BTreeMap<&'e str, usize>,
        stack: Vec<&'e str>,
        groups: Vec<Vec<&'e str>>,
    }
    fn visit<'e>(walk: &mut Walk<'e>, node: &'e str) {
        let n = walk.index.len();
        walk.index.insert(node, n);
        walk.low.insert(node, n);
        walk.stack.push(node);
        for next in walk.edges.get(node).into_iter().flat_map(|e| e.keys()) {
            let next = next.as_str();
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node, low);
            } else if walk.stack.contains(&next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let at = walk.stack.iter().position(|n| *n == node).unwrap();
            let group = walk.stack.split_off(at);
            if group.len() > 1 {
                walk.groups.push(group);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        groups: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            visit(&mut walk, node);
        }
    }
    walk.groups
        .iter()
        .map(|group| {
            let mut members: Vec<String> = group.iter().map(|m| m.to_string()).collect();
            members.sort();
            (members, shortest_cycle(edges, group))
        })
        .collect()
}

/// The shortest way from a group's first module back to it, inside the group.
fn shortest_cycle(edges: &Edges, group: &[&str]) -> Vec<String> {
    let start = group.iter().min().unwrap().to_string();
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(node) = queue.pop_front() {
        for next in edges.get(&node).into_iter().flat_map(|e| e.keys()) {
            if !group.contains(&next.as_str()) {
                continue;
            }
            if *next == start {
                // Back from `node` to the start, then round to the start again.
                let mut path = vec![node.clone()];
                while let Some(before) = came_from.get(path.last().unwrap()) {
                    path.push(before.clone());
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if !came_from.contains_key(next) {
                came_from.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    unreachable!("a strongly connected group has a cycle through each member")
}

/// `a -> b (src/a.rs:3)`, one line per edge of the cycle.
fn describe(edges: &Edges, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|pair| {
            format!(
                "  {} -> {} ({})",
                pair[0], pair[1], edges[&pair[0]][&pair[1]]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The group, then one cycle through it edge by edge.
fn report(edges: &Edges, (members, cycle): &(Vec<String>, Vec<String>)) -> String {
    format!(
        "{} modules reach one another ({}); one way round:\n{}",
        members.len(),
        members.join(", "),
        describe(edges, cycle)
    )
}

#[test]
fn imports_between_top_level_modules_flow_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_graph(&src);
    // The parser sees what is there: a graph without these edges would pass vacuously.
    for (from, to) in [
        ("cli", "commands"),
        ("commands", "definition"),
        ("plan", "record"),
    ] {
        assert!(
            edges.get(from).is_some_and(|e| e.contains_key(to)),
            "the scan missed {from} -> {to}: {edges:#?}"
        );
    }
    let found = cycles(&edges);
    let text: Vec<String> = found.iter().map(|group| report(&edges, group)).collect();
    assert!(
        found.is_empty(),
        "imports between top-level modules of src/ go in a circle; move what the lower module needs into it (or a module below both) and drop the import back up:\n{}",
        text.join("\n\n")
    );
}

#[test]
fn the_scan_reads_code_and_skips_comments_and_strings() {
    let source = r##"
//! Uses crate::doc in a comment.
use crate::{alpha, beta::{B, C},
    gamma::*};
/* crate::block /* nested crate::inner */ */
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::string"; let _ = r#"crate::raw "#;
    let _ = crate::delta::call(x);
    let _ = $crate::macro_path; let _ = my_crate::other;
    '"'
}
use crate :: epsilon;
"##;
    let mut names: Vec<(String, usize)> = crate_paths(&code_only(source));
    names.sort();
    assert_eq!(
        names,
        [
            ("alpha".to_string(), 3),
            ("beta".to_string(), 3),
            ("delta".to_string(), 8),
            ("epsilon".to_string(), 12),
            ("gamma".to_string(), 4),
        ]
    );
}

#[test]
fn a_cycle_is_shown_with_where_each_edge_is() {
    let mut edges = Edges::new();
    let mut edge = |from: &str, to: &str, at: &str| {
        edges
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string(), at.to_string());
    };
    edge("a", "b", "src/a.rs:1");
    edge("b", "c", "src/b/mod.rs:2");
    edge("c", "a", "src/c.rs:3");
    edge("c", "d", "src/c.rs:4");
    edge("d", "e", "src/d.rs:5");
    let found = cycles(&edges);
    assert_eq!(found.len(), 1);
    assert_eq!(
        report(&edges, &found[0]),
        "3 modules reach one another (a, b, c); one way round:\n  a -> b (src/a.rs:1)\n  b -> c (src/b/mod.rs:2)\n  c -> a (src/c.rs:3)"
    );
}
