//! OpenStack: credentials from the environment, a Keystone v3 session, Glance v2, the
//! Compute and Networking calls `build` needs (its key pair, the verification's server and
//! floating IP), and those of `sweep`.

pub mod client;
pub mod clouds;
pub mod compute;
pub mod credentials;
pub mod glance;
pub mod image_copy;
pub mod network;
pub mod openrc;

use client::OpenStackError;

/// The ID of the one item (ID, name) that `name_or_id` names: an ID first, else a name
/// no other item has. `what` names the kind, `listing` the command that lists them.
fn id_of_name_or_id<'a>(
    items: &[(&'a str, &'a str)],
    name_or_id: &str,
    what: &str,
    listing: &str,
) -> Result<String, OpenStackError> {
    if let Some((id, _)) = items.iter().find(|(id, _)| *id == name_or_id) {
        return Ok(id.to_string());
    }
    let mut named = items.iter().filter(|(_, name)| *name == name_or_id);
    match (named.next(), named.next()) {
        (Some((id, _)), None) => Ok(id.to_string()),
        (None, _) => Err(OpenStackError::Config(format!(
            "no {what} named or with the ID `{name_or_id}` (see `{listing}`)"
        ))),
        (Some(_), Some(_)) => Err(OpenStackError::Config(format!(
            "more than one {what} is named `{name_or_id}`: give its ID"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_id_wins_and_a_name_must_be_unique() {
        let items = [("1", "small"), ("2", "big"), ("3", "big"), ("small", "x")];
        let pick = |n: &str| super::id_of_name_or_id(&items, n, "flavor", "openstack flavor list");
        assert_eq!(pick("2").unwrap(), "2");
        assert_eq!(pick("small").unwrap(), "small", "an ID before a name");
        assert_eq!(pick("x").unwrap(), "small");
        let err = pick("big").unwrap_err().to_string();
        assert!(err.contains("more than one flavor is named `big`"), "{err}");
        let err = pick("none").unwrap_err().to_string();
        assert!(
            err.contains("no flavor named or with the ID `none`"),
            "{err}"
        );
    }
}
