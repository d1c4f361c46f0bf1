//! Recognises the credential sets `openstack` CLI users have: a dashboard RC file
//! (password), an application credential (the CI best practice), or OS_CLOUD; and turns
//! the first two into a Keystone v3 authentication request.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

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

/// Everything needed to get a token and pick endpoints. Debug shows no secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub method: AuthMethod,
    /// Keystone v3 root, e.g. `https://keystone.example:5000/v3`.
    pub auth_url: String,
    pub region: Option<String>,
    /// `public` unless OS_INTERFACE (or OS_ENDPOINT_TYPE) says otherwise.
    pub interface: String,
    /// The variables that were set, for a 401 message.
    pub variables_used: Vec<&'static str>,
    body: AuthBody,
}

#[derive(Clone)]
struct AuthBody(Value, SecretString);

impl std::fmt::Debug for AuthBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthBody(..)")
    }
}

const RC_VARIABLES: [&str; 17] = [
    "OS_AUTH_URL",
    "OS_USERNAME",
    "OS_USER_ID",
    "OS_PASSWORD",
    "OS_PROJECT_NAME",
    "OS_PROJECT_ID",
    "OS_TENANT_NAME",
    "OS_TENANT_ID",
    "OS_USER_DOMAIN_NAME",
    "OS_USER_DOMAIN_ID",
    "OS_PROJECT_DOMAIN_NAME",
    "OS_PROJECT_DOMAIN_ID",
    "OS_APPLICATION_CREDENTIAL_ID",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_REGION_NAME",
    "OS_INTERFACE",
];

/// Whether `variable` takes part in a login with `method`.
fn used_by(method: &AuthMethod, variable: &str) -> bool {
    let app_cred = variable.starts_with("OS_APPLICATION_CREDENTIAL_");
    match method {
        AuthMethod::ApplicationCredential => {
            !(variable == "OS_PASSWORD"
                || variable.starts_with("OS_PROJECT_")
                || variable.starts_with("OS_TENANT_"))
        }
        _ => !app_cred,
    }
}

/// `{"name": ...}` or `{"id": ...}`, with a domain for names.
fn named(env: &Env, name: &str, id: &str, domain: Option<Value>) -> Option<Value> {
    if let Some(id) = env.get(id) {
        return Some(json!({ "id": id }));
    }
    let name = env.get(name)?;
    let mut v = json!({ "name": name });
    if let Some(domain) = domain {
        v["domain"] = domain;
    }
    Some(v)
}

fn domain(env: &Env, name_var: &str, id_var: &str) -> Value {
    match (env.get(id_var), env.get(name_var)) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(name)) => json!({ "name": name }),
        // Keystone's default domain, as the openstack CLI assumes for RC files without one.
        (None, None) => json!({ "id": "default" }),
    }
}

impl Credentials {
    /// Credentials from the OS_* variables; None when no complete set is there (OS_CLOUD
    /// alone gives an error naming what is missing).
    pub fn from_env(env: &Env) -> Result<Option<Credentials>, String> {
        let Some(method) = detect(env) else {
            return Ok(None);
        };
        if let AuthMethod::Cloud(name) = &method {
            // clouds::resolve filled in the entry's settings, and they are not enough.
            return Err(format!(
                "OS_CLOUD={name}: its clouds.yaml entry (with secure.yaml and the OS_* variables) has no complete login: it needs auth.auth_url and either username + password or application_credential_id (or _name) + application_credential_secret"
            ));
        }
        let mut auth_url = env
            .get("OS_AUTH_URL")
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if !auth_url.ends_with("/v3") {
            auth_url.push_str("/v3");
        }
        let user_domain = domain(env, "OS_USER_DOMAIN_NAME", "OS_USER_DOMAIN_ID");
        let (identity, secret) = match method {
            AuthMethod::ApplicationCredential => {
                let secret = env
                    .get("OS_APPLICATION_CREDENTIAL_SECRET")
                    .unwrap_or_default();
                let mut cred = json!({ "secret": "" });
                if let Some(id) = env.get("OS_APPLICATION_CREDENTIAL_ID") {
                    cred["id"] = json!(id);
                } else {
                    cred["name"] = json!(env.get("OS_APPLICATION_CREDENTIAL_NAME"));
                    cred["user"] = named(env, "OS_USERNAME", "OS_USER_ID", Some(user_domain))
                        .ok_or("OS_APPLICATION_CREDENTIAL_NAME needs OS_USERNAME or OS_USER_ID")?;
                }
                (
                    json!({ "methods": ["application_credential"], "application_credential": cred }),
                    secret,
                )
            }
            _ => {
                let mut user = named(env, "OS_USERNAME", "OS_USER_ID", Some(user_domain))
                    .expect("detect saw a user");
                user["password"] = json!("");
                (
                    json!({ "methods": ["password"], "password": { "user": user } }),
                    env.get("OS_PASSWORD").unwrap_or_default(),
                )
            }
        };
        let mut auth = json!({ "identity": identity });
        // Application credentials carry their own scope; a password login names a project.
        if method == AuthMethod::Password {
            let project_domain = domain(env, "OS_PROJECT_DOMAIN_NAME", "OS_PROJECT_DOMAIN_ID");
            let project = named(
                env,
                "OS_PROJECT_NAME",
                "OS_PROJECT_ID",
                Some(project_domain.clone()),
            )
            .or_else(|| named(env, "OS_TENANT_NAME", "OS_TENANT_ID", Some(project_domain)));
            if let Some(project) = project {
                auth["scope"] = json!({ "project": project });
            }
        }
        Ok(Some(Credentials {
            auth_url,
            region: env.get("OS_REGION_NAME").map(str::to_string),
            interface: env
                .get("OS_INTERFACE")
                .or_else(|| env.get("OS_ENDPOINT_TYPE"))
                .map(|i| i.trim_end_matches("URL").to_string())
                .unwrap_or_else(|| "public".into()),
            variables_used: RC_VARIABLES
                .iter()
                .copied()
                .filter(|v| env.has(v) && used_by(&method, v))
                .collect(),
            body: AuthBody(
                json!({ "auth": auth }),
                SecretString::from(secret.to_string()),
            ),
            method,
        }))
    }

    /// The `POST /auth/tokens` body, secret filled in.
    pub fn token_request(&self) -> Value {
        let mut body = self.body.0.clone();
        let secret = json!(self.body.1.expose_secret());
        let identity = &mut body["auth"]["identity"];
        if identity.get("application_credential").is_some() {
            identity["application_credential"]["secret"] = secret;
        } else {
            identity["password"]["user"]["password"] = secret;
        }
        body
    }
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

    #[test]
    fn rc_file_variables_make_a_scoped_password_request() {
        let c = Credentials::from_env(&env(&[
            ("OS_AUTH_URL", "https://ks.example:5000"),
            ("OS_USERNAME", "alice"),
            ("OS_PASSWORD", "pw \"x\""),
            ("OS_TENANT_NAME", "c2016005"),
            ("OS_REGION_NAME", "east"),
            ("OS_ENDPOINT_TYPE", "internalURL"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.auth_url, "https://ks.example:5000/v3");
        assert_eq!(c.interface, "internal");
        assert_eq!(c.region.as_deref(), Some("east"));
        let body = c.token_request();
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["password"],
            "pw \"x\""
        );
        assert_eq!(body["auth"]["scope"]["project"]["name"], "c2016005");
        assert_eq!(body["auth"]["scope"]["project"]["domain"]["id"], "default");
        assert!(!format!("{c:?}").contains("pw"), "Debug shows no secret");
        assert!(c.variables_used.contains(&"OS_TENANT_NAME"));
    }

    #[test]
    fn application_credentials_by_name_need_a_user() {
        let e = env(&[
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "ci"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
        ]);
        assert!(Credentials::from_env(&e)
            .unwrap_err()
            .contains("OS_USERNAME"));
        let e = env(&[
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
        ]);
        let body = Credentials::from_env(&e).unwrap().unwrap().token_request();
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["id"],
            "abc"
        );
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["secret"],
            "s"
        );
        assert!(body["auth"].get("scope").is_none());
    }
}
