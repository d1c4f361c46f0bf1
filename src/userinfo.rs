//! Credentials written into a URL (`git+https://user:TOKEN@host/...`, what a private
//! worker repository needs): the userinfo is a secret. It is masked in every output and
//! left out of the manifest, where the URL stands without it.

/// A value with the userinfo of every URL in it removed, and those userinfos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub value: String,
    pub userinfo: Vec<String>,
}

/// One URL of a value: its scheme and the userinfo of its authority, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    pub scheme: &'a str,
    pub userinfo: Option<&'a str>,
}

/// A value cut at its URLs: the text before each `scheme://` (scheme included), that
/// URL, and the host; then the rest.
fn pieces(value: &str) -> (Vec<(&str, Url<'_>, &str)>, &str) {
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some((before, after)) = rest.split_once("://") {
        let scheme = before
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .next()
            .unwrap_or_default();
        // The authority ends at the path, query or fragment (or at a space, between words).
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((info, host)) => (Some(info), host),
            None => (None, authority),
        };
        pieces.push((before, Url { scheme, userinfo }, host));
        rest = tail;
    }
    (pieces, rest)
}

/// Every URL in `value` (any number, anywhere in it).
pub fn urls(value: &str) -> Vec<Url<'_>> {
    pieces(value).0.into_iter().map(|(_, url, _)| url).collect()
}

impl Url<'_> {
    /// The userinfo when it is a credential: all of them but an ssh URL's user alone
    /// (`git+ssh://git@host`), which is part of where the source is, not a secret
    /// (masking `git` in every line would hide nothing).
    pub fn credential(&self) -> Option<&str> {
        let transport = self.scheme.rsplit('+').next().unwrap_or_default();
        let ssh_user = |info: &&str| transport.eq_ignore_ascii_case("ssh") && !info.contains(':');
        self.userinfo.filter(|info| !ssh_user(info))
    }
}

/// Finds `scheme://userinfo@host` in `value` (any number of URLs, anywhere in it) where the
/// userinfo is a credential (`Url::credential`).
pub fn strip(value: &str) -> Stripped {
    let (pieces, rest) = pieces(value);
    let mut out = String::with_capacity(value.len());
    let mut userinfo = Vec::new();
    for (before, url, host) in pieces {
        out.push_str(before);
        out.push_str("://");
        match (url.credential(), url.userinfo) {
            (Some(credential), _) => userinfo.push(credential.to_string()),
            (None, Some(user)) => {
                out.push_str(user);
                out.push('@');
            }
            (None, None) => {}
        }
        out.push_str(host);
    }
    out.push_str(rest);
    Stripped {
        value: out,
        userinfo,
    }
}

/// Every form in which a userinfo's secret may be printed: whole, each of its user and
/// password, and those percent-decoded (git and pip print URLs either way).
pub fn secret_forms(userinfo: &str) -> Vec<String> {
    let mut forms = vec![userinfo.to_string()];
    if let Some((user, password)) = userinfo.split_once(':') {
        forms.push(user.to_string());
        forms.push(password.to_string());
    }
    let decoded: Vec<String> = forms.iter().map(|f| percent_decode(f)).collect();
    forms.extend(decoded);
    forms.sort();
    forms.dedup();
    forms
}

/// `text` with its `%XX` escapes decoded (a URL's user or password as git reads it);
/// a `%` without two hex digits stays as it is.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_each_scheme_and_userinfo() {
        let value = "w @ git+https://u:p@h/x.git; git+ssh://git@g/y https://plain/z";
        assert_eq!(
            urls(value),
            [
                Url {
                    scheme: "git+https",
                    userinfo: Some("u:p")
                },
                Url {
                    scheme: "git+ssh",
                    userinfo: Some("git")
                },
                Url {
                    scheme: "https",
                    userinfo: None
                },
            ]
        );
        // The ssh user stays in the URL and is no secret; the https pair is one.
        let stripped = strip(value);
        assert_eq!(
            stripped.value,
            "w @ git+https://h/x.git; git+ssh://git@g/y https://plain/z"
        );
        assert_eq!(stripped.userinfo, ["u:p"]);
        assert_eq!(strip("git+ssh://git:pw@g/y").userinfo, ["git:pw"]);
    }

    #[test]
    fn userinfo_is_taken_out_of_every_url() {
        let s =
            strip("git+https://x-access-token:ghp_S3cr%40t@github.com/o/w.git#subdirectory=src");
        assert_eq!(s.value, "git+https://github.com/o/w.git#subdirectory=src");
        assert_eq!(s.userinfo, ["x-access-token:ghp_S3cr%40t"]);
        let s = strip("uworker @ git+https://tok@h.example:8443?x=1");
        assert_eq!(s.value, "uworker @ git+https://h.example:8443?x=1");
        assert_eq!(s.userinfo, ["tok"]);
        let s = strip("git+https://github.com/o/w.git@v1.0");
        assert_eq!(
            s.value, "git+https://github.com/o/w.git@v1.0",
            "a ref is no userinfo"
        );
        assert!(s.userinfo.is_empty());
        assert_eq!(strip("uworker==1.0").value, "uworker==1.0");
        assert_eq!(strip("é://ü@ö").value, "é://ö");
    }

    #[test]
    fn secret_forms_cover_parts_and_decoded_text() {
        let forms = secret_forms("user:p%40ss%2");
        for form in ["user:p%40ss%2", "user", "p%40ss%2", "p@ss%2", "user:p@ss%2"] {
            assert!(forms.contains(&form.to_string()), "{form}: {forms:?}");
        }
    }
}
