//! POSIX shell words: quoting values so any byte string survives `source`, and reading
//! back the values of the seed's `export KEY=value` lines.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WordError {
    #[error("unterminated {0} quote")]
    Unterminated(&'static str),
    #[error("unquoted `{0}` is shell syntax this file format does not evaluate; put the value in single quotes")]
    Unsupported(char),
    #[error("a value cannot contain a NUL byte")]
    Nul,
}

/// Quotes `value` as one shell word: `'...'` with every `'` written as `'\''`.
/// Inside single quotes nothing is special, so `$`, `"`, `\`, spaces and newlines pass as is.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Reads one shell word as `sh` would for an assignment value: unquoted text, `'...'`,
/// `"..."` (with `\"`, `\\`, `\$` and `` \` `` escapes) and concatenations of them.
/// Expansions (`$x`, backquotes) are refused rather than silently taken literally.
/// Trailing unquoted whitespace and a trailing ` # comment` end the word.
pub fn parse_word(raw: &str) -> Result<String, WordError> {
    read_word(raw, &mut std::iter::empty()).map_err(|e| match e {
        ValueError::NeverClosed(kind) => WordError::Unterminated(kind),
        ValueError::Word(e) => e,
    })
}

/// A shell variable name (`[A-Za-z_][A-Za-z0-9_]*`). Messages quote a word of an input
/// file only when it is one: any other text could be a secret typed in the wrong place.
pub fn is_name(word: &str) -> bool {
    let mut bytes = word.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `KEY` of a `KEY=value` word whose KEY is a name: a variable set without `export`.
pub fn bare_assignment(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    is_name(key).then_some(key)
}

/// The assignment of an `export KEY=value` line (`KEY=value`); None for any other line.
pub fn export_assignment(line: &str) -> Option<&str> {
    line.strip_prefix("export")
        .filter(|rest| rest.starts_with([' ', '\t']))
        .map(str::trim_start)
}

/// Why an assignment's value could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ValueError {
    /// A quote opened in the value is still open at the end of the file.
    NeverClosed(&'static str),
    Word(WordError),
}

/// Reads an assignment's value (`parse_word`); a quoted value may continue on the next
/// lines, taken from `more`, as it does for `source`.
pub fn read_value<'f, 'a: 'f>(
    first: &'f str,
    more: &mut impl Iterator<Item = &'a str>,
) -> Result<String, ValueError> {
    read_word(first.trim_end_matches('\r'), more)
}

/// The characters of a word: its first line, then, only while a quote is open, the
/// lines after it joined by `\n`. Each character is looked at once, so an unterminated
/// quote costs one pass over the file, not one per line.
struct WordText<'f, 'm, I> {
    line: std::str::Chars<'f>,
    more: &'m mut I,
}

impl<'f, 'a: 'f, I: Iterator<Item = &'a str>> WordText<'f, '_, I> {
    /// The next character inside quotes: past the end of a line, the line break and the
    /// next line. None at the end of the text.
    fn quoted(&mut self) -> Option<char> {
        if let Some(c) = self.line.next() {
            return Some(c);
        }
        let next = self.more.next()?;
        self.line = next.chars();
        Some('\n')
    }
}

/// `parse_word` over a first line and the lines a quote opened in it may span.
fn read_word<'f, 'a: 'f>(
    first: &'f str,
    more: &mut impl Iterator<Item = &'a str>,
) -> Result<String, ValueError> {
    let word_error = |e| Err(ValueError::Word(e));
    let mut text = WordText {
        line: first.chars(),
        more,
    };
    let mut out = String::new();
    while let Some(c) = text.line.next() {
        match c {
            '\0' => return word_error(WordError::Nul),
            '\'' => loop {
                match text.quoted() {
                    Some('\'') => break,
                    Some('\0') => return word_error(WordError::Nul),
                    Some(ch) => out.push(ch),
                    None => return Err(ValueError::NeverClosed("single")),
                }
            },
            '"' => loop {
                match text.quoted() {
                    Some('"') => break,
                    Some('\\') => match text.quoted() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                        Some('\n') => {}
                        Some('\0') => return word_error(WordError::Nul),
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => return Err(ValueError::NeverClosed("double")),
                    },
                    Some(ch @ ('$' | '`')) => return word_error(WordError::Unsupported(ch)),
                    Some('\0') => return word_error(WordError::Nul),
                    Some(ch) => out.push(ch),
                    None => return Err(ValueError::NeverClosed("double")),
                }
            },
            '\\' => match text.line.next() {
                Some('\0') => return word_error(WordError::Nul),
                Some(ch) => out.push(ch),
                None => return word_error(WordError::Unterminated("escape")),
            },
            ' ' | '\t' => {
                // The word ends here; only a comment may follow.
                let rest = text.line.as_str().trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    return Ok(out);
                }
                return word_error(WordError::Unsupported(' '));
            }
            '$' | '`' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                return word_error(WordError::Unsupported(c))
            }
            ch => out.push(ch),
        }
    }
    Ok(out)
}

/// The lines of a shell-like file (a worker config, an RC file) as statements: blank
/// lines and `#` comments skipped, `\r` and surrounding blanks trimmed, each with its
/// 1-based line number; the raw lines after one stay at hand for a quoted value that
/// spans lines (`read_value`).
pub struct Statements<'a> {
    lines: std::iter::Enumerate<std::str::Split<'a, char>>,
}

impl<'a> Statements<'a> {
    pub fn new(text: &'a str) -> Statements<'a> {
        Statements {
            lines: text.split('\n').enumerate(),
        }
    }

    /// The lines after the current statement, as they are.
    pub fn continuation(&mut self) -> impl Iterator<Item = &'a str> + '_ {
        self.lines.by_ref().map(|(_, line)| line)
    }
}

impl<'a> Iterator for Statements<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        self.lines.by_ref().find_map(|(index, raw)| {
            let line = raw.trim_end_matches('\r').trim();
            (!line.is_empty() && !line.starts_with('#')).then_some((index + 1, line))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_skip_blanks_and_comments_and_keep_line_numbers() {
        let mut statements = Statements::new("# c\n\n  a=1 \r\nb='x\ny'\n  # d\nc\n");
        assert_eq!(statements.next(), Some((3, "a=1")));
        assert_eq!(statements.next(), Some((4, "b='x")));
        assert_eq!(statements.continuation().next(), Some("y'"));
        assert_eq!(statements.next(), Some((7, "c")));
        assert_eq!(statements.next(), None);
    }

    #[test]
    fn a_quoted_value_continues_on_the_next_lines_and_only_then() {
        let read = |first: &str, more: &[&str]| read_value(first, &mut more.iter().copied());
        assert_eq!(read("'a", &["b", "c' # x"]), Ok("a\nb\nc".into()));
        // `\` and a line break inside double quotes join the lines, as in sh.
        assert_eq!(read("\"a\\", &["b\""]), Ok("ab".into()));
        assert_eq!(read("plain\r", &["never read"]), Ok("plain".into()));
        assert_eq!(
            read("'open", &["a", "b"]),
            Err(ValueError::NeverClosed("single"))
        );
        assert_eq!(read("\"x\\", &[]), Err(ValueError::NeverClosed("double")));
        assert_eq!(
            read("a\\", &["b"]),
            Err(ValueError::Word(WordError::Unterminated("escape")))
        );
        assert_eq!(
            read("'a", &["b' c"]),
            Err(ValueError::Word(WordError::Unsupported(' ')))
        );
        let mut more = ["'", "after"].into_iter();
        assert_eq!(read_value("'", &mut more), Ok("\n".into()));
        assert_eq!(more.next(), Some("after"), "lines after the value are left");
    }

    #[test]
    fn names_and_bare_assignments() {
        assert!(is_name("OS_PASSWORD") && is_name("_x1") && is_name("a"));
        assert!(!is_name("") && !is_name("1a") && !is_name("a-b") && !is_name("a b"));
        assert_eq!(bare_assignment("OS_PASSWORD=x y"), Some("OS_PASSWORD"));
        assert_eq!(bare_assignment("a b=c"), None);
        assert_eq!(bare_assignment("plain"), None);
    }

    #[test]
    fn quote_round_trips_through_parse_word() {
        for value in [
            "",
            "plain",
            "it's",
            "a b",
            "$HOME",
            "\"q\"",
            "line1\nline2",
            "\\",
        ] {
            assert_eq!(parse_word(&quote(value)).unwrap(), value, "value {value:?}");
        }
    }

    #[test]
    fn reads_the_forms_the_seed_allows() {
        assert_eq!(
            parse_word("http://example.com/api").unwrap(),
            "http://example.com/api"
        );
        assert_eq!(parse_word("'s3cret pass'").unwrap(), "s3cret pass");
        assert_eq!(parse_word(r#""dq \"x\" \$y""#).unwrap(), r#"dq "x" $y"#);
        assert_eq!(parse_word("ab'cd'\"ef\"").unwrap(), "abcdef");
        assert_eq!(parse_word("value   # comment").unwrap(), "value");
        assert_eq!(parse_word(r"a\ b").unwrap(), "a b");
    }

    #[test]
    fn refuses_expansions_and_broken_quotes() {
        assert_eq!(parse_word("$HOME"), Err(WordError::Unsupported('$')));
        assert_eq!(parse_word("\"$HOME\""), Err(WordError::Unsupported('$')));
        assert_eq!(parse_word("`id`"), Err(WordError::Unsupported('`')));
        assert_eq!(parse_word("'open"), Err(WordError::Unterminated("single")));
        assert_eq!(parse_word("\"open"), Err(WordError::Unterminated("double")));
        assert_eq!(parse_word("two words"), Err(WordError::Unsupported(' ')));
    }
}
