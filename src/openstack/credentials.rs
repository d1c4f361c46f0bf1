//! Recognises the credential sets `openstack` CLI users have: a dashboard RC file
//! (password), an application credential (the CI best practice), or OS_CLOUD.

use crate::env::Env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    ApplicationCredential,
    /// A named entry of clouds.yaml.
    Cloud(String),
}

impl AuthMethod {
    /// The variables this method reads, for messages (never their values).
    pub fn describe(&self) -> String {
        match self {
            AuthMethod::Password => {
                "password (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME)".into()
            }
            AuthMethod::ApplicationCredential => {
                "application credential (OS_AUTH_URL, OS_APPLICATION_CREDENTIAL_ID/NAME, OS_APPLICATION_CREDENTIAL_SECRET)".into()
            }
            AuthMethod::Cloud(name) => format!("clouds.yaml entry `{name}` (OS_CLOUD)"),
        }
    }
}

/// The credential set the environment holds, if a complete one is there.
pub fn detect(env: &Env) -> Option<AuthMethod> {
    let has_url = env.has("OS_AUTH_URL");
    let app_id =
        env.has("OS_APPLICATION_CREDENTIAL_ID") || env.has("OS_APPLICATION_CREDENTIAL_NAME");
    if has_url && app_id && env.has("OS_APPLICATION_CREDENTIAL_SECRET") {
        return Some(AuthMethod::ApplicationCredential);
    }
    let user = env.has("OS_USERNAME") || env.has("OS_USER_ID");
    if has_url && user && env.has("OS_PASSWORD") {
        return Some(AuthMethod::Password);
    }
    env.get("OS_CLOUD")
        .map(|c| AuthMethod::Cloud(c.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn recognises_each_credential_set() {
        let url = ("OS_AUTH_URL", "http://127.0.0.1:5000/v3");
        assert_eq!(detect(&env(&[])), None);
        assert_eq!(
            detect(&env(&[url, ("OS_USERNAME", "u")])),
            None,
            "no password"
        );
        assert_eq!(
            detect(&env(&[url, ("OS_USERNAME", "u"), ("OS_PASSWORD", "p")])),
            Some(AuthMethod::Password)
        );
        assert_eq!(
            detect(&env(&[
                url,
                ("OS_APPLICATION_CREDENTIAL_ID", "i"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s")
            ])),
            Some(AuthMethod::ApplicationCredential)
        );
        assert_eq!(
            detect(&env(&[("OS_CLOUD", "smog")])),
            Some(AuthMethod::Cloud("smog".into()))
        );
        assert_eq!(
            detect(&env(&[url, ("OS_USERNAME", "u"), ("OS_PASSWORD", "")])),
            None,
            "empty = unset"
        );
    }
}
