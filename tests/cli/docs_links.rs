//! The documentation's links: every relative link in README.md and docs/*.md names a file
//! of the repository, every `#anchor` a heading of the page it points into (GitHub's
//! slugs), and the README links every page of docs/. Links to http(s) URLs are not
//! fetched: the suite has no network.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;

/// The pages checked: the README and every Markdown file in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a page with fenced code blocks blanked out, so a link or a heading shown
/// as an example is not taken for one. Inline code stays: a heading's code is part of
/// its anchor.
fn prose(text: &str) -> Vec<String> {
    let mut fence: Option<&str> = None;
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match fence {
                Some(marker) if trimmed.starts_with(marker) => {
                    fence = None;
                    String::new()
                }
                Some(_) => String::new(),
                None if trimmed.starts_with("```") || trimmed.starts_with("~~~") => {
                    fence = Some(&trimmed[..3]);
                    String::new()
                }
                None => line.to_owned(),
            }
        })
        .collect()
}

/// A line without its inline code spans (`` `[a](b)` `` is text, not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut parts = line.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    // Every second part is inside backticks; an unpaired backtick keeps the rest as text.
    let rest: Vec<&str> = parts.collect();
    let paired = rest.len() - rest.len() % 2;
    for (i, part) in rest.iter().enumerate() {
        if i >= paired {
            out.push('`');
            out.push_str(part);
        } else if i % 2 == 1 {
            out.push_str(part);
        }
    }
    out
}

/// The targets of the inline links (`[text](target)`) and reference definitions
/// (`[label]: target`) of a page's prose, with their line numbers.
fn link_targets(prose: &[String]) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (number, line) in prose.iter().enumerate() {
        let number = number + 1;
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            targets.push((number, target.to_owned()));
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if let Some((label, target)) = trimmed.split_once("]: ") {
            if label.starts_with('[') && !label.contains(']') {
                let target = target.split_whitespace().next().unwrap_or("");
                targets.push((number, target.to_owned()));
            }
        }
    }
    targets
}

/// GitHub's anchor for a heading's text: inline markup and punctuation other than `-`
/// and `_` dropped, lower case, each space a `-`.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (ATX `#` headings outside code), with GitHub's
/// `-1`, `-2` suffixes for repeated ones.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let heading = line[hashes..].trim().trim_end_matches('#').trim();
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// What is wrong with the links of one page (`page` is its path, `text` its content):
/// each problem names the page, the line and the link.
fn broken_links(page: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = page.parent().unwrap();
    let name = page.strip_prefix(repo()).unwrap_or(page).display();
    for (line, target) in link_targets(&prose(text)) {
        if target.is_empty() {
            problems.push(format!("{name}:{line}: an empty link"));
            continue;
        }
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        if path.is_empty() {
            if let Some(anchor) = anchor.filter(|anchor| !anchors(text).contains(*anchor)) {
                problems.push(format!(
                    "{name}:{line}: `{target}`: the page has no heading #{anchor}"
                ));
            }
            continue;
        }
        let file = dir.join(path);
        if !file.exists() {
            problems.push(format!("{name}:{line}: `{target}`: no file {path}"));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if file.extension().is_none_or(|ext| ext != "md") {
            problems.push(format!(
                "{name}:{line}: `{target}`: an anchor into a file that is not Markdown"
            ));
            continue;
        }
        let target_text = std::fs::read_to_string(&file).unwrap();
        if !anchors(&target_text).contains(anchor) {
            problems.push(format!(
                "{name}:{line}: `{target}`: {path} has no heading #{anchor}"
            ));
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        problems.extend(broken_links(&page, &text));
    }
    assert_eq!(problems, Vec::<String>::new(), "broken links");
}

#[test]
fn the_readme_links_every_page_of_docs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let linked: BTreeSet<String> = link_targets(&prose(&readme))
        .into_iter()
        .map(|(_, target)| target.split('#').next().unwrap().to_owned())
        .collect();
    for page in pages().iter().skip(1) {
        let rel = page.strip_prefix(repo()).unwrap().display().to_string();
        assert!(linked.contains(&rel), "README.md does not link {rel}");
    }
}

#[test]
fn a_broken_link_or_anchor_is_found() {
    let page = repo().join("docs/example.md");
    let text = "# A page\n## Code `in` a heading\n\
        [fine](../README.md) [fine too](#a-page) [code heading](#code-in-a-heading) [up](../README.md#quick-start-a-fresh-debian-12-machine-with-cargo)\n\
        [gone](no-such-page.md)\n\
        [wrong anchor](../README.md#no-such-heading)\n\
        ```\n[in code](ignored.md)\n```\n\
        `[inline code](ignored.md)` [web](https://example.com/x)\n\
        [ref]: missing.md\n";
    let problems = broken_links(&page, text);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("docs/example.md:4: `no-such-page.md`"));
    assert!(problems[1].contains("has no heading #no-such-heading"));
    assert!(problems[2].contains("docs/example.md:10: `missing.md`"));
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug("Leftovers of dead runs: `sweep`"),
        "leftovers-of-dead-runs-sweep"
    );
    assert_eq!(
        slug("The image definition: `provision/image.toml`"),
        "the-image-definition-provisionimagetoml"
    );
    assert_eq!(
        slug("How packer runs (`test` and `build`)"),
        "how-packer-runs-test-and-build"
    );
    assert_eq!(slug("snake_case and-dash"), "snake_case-and-dash");
    let repeated = anchors("# Notes\n## Notes\n## Notes\n");
    assert_eq!(
        repeated,
        BTreeSet::from(["notes".into(), "notes-1".into(), "notes-2".into()])
    );
}
