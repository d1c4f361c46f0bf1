//! Credentials written into a URL (`git+https://user:TOKEN@host/...`, what a private
//! worker repository needs): the userinfo is a secret. It is masked in every output and
//! left out of the manifest, where the URL stands without it.

/// A value with the userinfo of every URL in it removed, and those userinfos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub value: String,
    pub userinfo: Vec<String>,
}

/// Finds `scheme://userinfo@host` in `value` (any number of URLs, anywhere in it).
pub fn strip(value: &str) -> Stripped {
    let mut out = String::with_capacity(value.len());
    let mut userinfo = Vec::new();
    let mut rest = value;
    while let Some((before, after)) = rest.split_once("://") {
        out.push_str(before);
        out.push_str("://");
        // The authority ends at the path, query or fragment (or at a space, between words).
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        match authority.rsplit_once('@') {
            Some((info, host)) => {
                userinfo.push(info.to_string());
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = tail;
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

fn percent_decode(text: &str) -> String {
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
