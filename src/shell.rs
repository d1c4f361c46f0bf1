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
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\0' => return Err(WordError::Nul),
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\0') => return Err(WordError::Nul),
                    Some(ch) => out.push(ch),
                    None => return Err(WordError::Unterminated("single")),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                        Some('\n') => {}
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => return Err(WordError::Unterminated("double")),
                    },
                    Some(ch @ ('$' | '`')) => return Err(WordError::Unsupported(ch)),
                    Some('\0') => return Err(WordError::Nul),
                    Some(ch) => out.push(ch),
                    None => return Err(WordError::Unterminated("double")),
                }
            },
            '\\' => match chars.next() {
                Some(ch) => out.push(ch),
                None => return Err(WordError::Unterminated("escape")),
            },
            ' ' | '\t' => {
                // The word ends here; only a comment may follow.
                let rest: String = chars.collect();
                let rest = rest.trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    return Ok(out);
                }
                return Err(WordError::Unsupported(' '));
            }
            '$' | '`' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                return Err(WordError::Unsupported(c))
            }
            ch => out.push(ch),
        }
    }
    Ok(out)
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
pub fn read_value<'a>(
    first: &str,
    more: &mut impl Iterator<Item = &'a str>,
) -> Result<String, ValueError> {
    let mut value_text = first.trim_end_matches('\r').to_string();
    loop {
        match parse_word(&value_text) {
            Ok(value) => return Ok(value),
            Err(WordError::Unterminated(kind)) if kind != "escape" => match more.next() {
                Some(next) => {
                    value_text.push('\n');
                    value_text.push_str(next);
                }
                None => return Err(ValueError::NeverClosed(kind)),
            },
            Err(e) => return Err(ValueError::Word(e)),
        }
    }
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
