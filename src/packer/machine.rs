//! Packer's `-machine-readable` lines: `timestamp,target,type,data...`, with `,` inside
//! data written `%!(PACKER_COMMA)` and line breaks as a literal `\n`.

/// How a `ui` line was said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiLevel {
    Say,
    Message,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ui {
        level: UiLevel,
        text: String,
    },
    ErrorCount(u32),
    /// A build's error (`TS,BUILD,error,TEXT`).
    BuildError {
        build: String,
        text: String,
    },
    ArtifactCount {
        build: String,
        count: u32,
    },
    /// One field of an artifact: `TS,BUILD,artifact,INDEX,KEY,VALUE...`.
    Artifact {
        build: String,
        index: u32,
        key: String,
        value: String,
    },
    Other {
        kind: String,
        text: String,
    },
}

/// Parses one line; None when it is not in the machine-readable form at all.
pub fn parse(line: &str) -> Option<Event> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = line.splitn(4, ',');
    let timestamp = fields.next()?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let target = fields.next()?;
    let kind = fields.next()?;
    let data = fields.next().unwrap_or("");
    let event = match kind {
        "ui" => {
            let (level, text) = data.split_once(',').unwrap_or((data, ""));
            let level = match level {
                "say" => UiLevel::Say,
                "message" => UiLevel::Message,
                "error" => UiLevel::Error,
                _ => {
                    return Some(Event::Other {
                        kind: format!("ui {level}"),
                        text: unescape(text),
                    })
                }
            };
            Event::Ui {
                level,
                text: unescape(text),
            }
        }
        "error-count" => Event::ErrorCount(data.trim().parse().ok()?),
        "error" => Event::BuildError {
            build: target.to_string(),
            text: unescape(data),
        },
        "artifact-count" => Event::ArtifactCount {
            build: target.to_string(),
            count: data.trim().parse().ok()?,
        },
        "artifact" => {
            let mut parts = data.splitn(3, ',');
            let index = parts.next()?.parse().ok()?;
            let key = parts.next()?.to_string();
            Event::Artifact {
                build: target.to_string(),
                index,
                key,
                value: unescape(parts.next().unwrap_or("")),
            }
        }
        other => Event::Other {
            kind: other.to_string(),
            text: unescape(data),
        },
    };
    Some(event)
}

/// Undoes packer's escaping. Backslashes are not escaped by packer, so a literal `\n` in
/// a message cannot be told from a line break; it is read as one.
pub fn unescape(data: &str) -> String {
    if !data.contains('%') && !data.contains('\\') {
        return data.to_string();
    }
    data.replace("%!(PACKER_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packer_1_6_6_lines() {
        // Lines as packer 1.6.6 printed them here (null builder).
        assert_eq!(
            parse("1795546070,,ui,message,    null: inline: comma%!(PACKER_COMMA) separated%!(PACKER_COMMA) text"),
            Some(Event::Ui { level: UiLevel::Message, text: "    null: inline: comma, separated, text".into() })
        );
        assert_eq!(
            parse("1795546073,,ui,say,\\n==> Wait completed after 2 seconds 731 milliseconds"),
            Some(Event::Ui {
                level: UiLevel::Say,
                text: "\n==> Wait completed after 2 seconds 731 milliseconds".into()
            })
        );
        assert_eq!(
            parse("1795546073,null,artifact-count,1"),
            Some(Event::ArtifactCount {
                build: "null".into(),
                count: 1
            })
        );
        assert_eq!(
            parse("1795546073,null,artifact,0,string,Did not export anything. This is the null builder"),
            Some(Event::Artifact { build: "null".into(), index: 0, key: "string".into(), value: "Did not export anything. This is the null builder".into() })
        );
        assert_eq!(
            parse("1795546073,null,artifact,0,end"),
            Some(Event::Artifact {
                build: "null".into(),
                index: 0,
                key: "end".into(),
                value: String::new()
            })
        );
        assert_eq!(
            parse("1795546081,null,error,Script exited with non-zero exit status: 1.Allowed exit codes are: [0]"),
            Some(Event::BuildError { build: "null".into(), text: "Script exited with non-zero exit status: 1.Allowed exit codes are: [0]".into() })
        );
        assert_eq!(
            parse("1795546081,,error-count,1"),
            Some(Event::ErrorCount(1))
        );
    }

    #[test]
    fn anything_else_is_not_machine_readable() {
        assert_eq!(parse("plain text"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("12a,,ui,say,x"), None);
        assert_eq!(parse("1,,error-count,many"), None);
    }
}
