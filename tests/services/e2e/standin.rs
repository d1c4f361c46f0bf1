//! The Compute stand-in itself: a server's identity through cloud-init, and its metadata
//! kept as Nova's API keeps it.

use super::*;

/// The stand-in feeds a server's cloud-init as Nova does: the server ID as instance-id, the
/// hostname Nova makes of the name, the key pair (the only way a key reaches the host),
/// the create body's user data. And it keeps the server's metadata as Nova's API does
/// (merge, set one item, list, show), held to Nova's schemas.
#[test]
fn a_server_gets_its_identity_through_cloud_init_and_keeps_its_metadata() {
    let s = Scenario::start();
    let glance = Glance::new(&s.cloud).unwrap();
    let base = glance.list(&[("name", BASE_IMAGE)], |_| true).unwrap();
    let server = StandInServer::boot(
        &s.cloud,
        &base[0].id,
        "First_boot check.1",
        Some("#cloud-config\nruncmd:\n  - [touch, /run/user-data-ran]\n"),
    );
    assert_first_boot_of(&server, "first-boot-check-1");
    server.ssh.root_ok("test -e /run/user-data-ran");

    let url = format!(
        "{}/servers/{}/metadata",
        s.cloud.endpoint("compute").unwrap(),
        server.id
    );
    let call = |method: Method, url: &str, body: serde_json::Value| -> serde_json::Value {
        s.cloud
            .call(method, url, |r| r.json(&body))
            .unwrap()
            .json()
            .unwrap()
    };
    let merged = call(
        Method::POST,
        &url,
        serde_json::json!({ "metadata": { "a": "1", "b": "2" } }),
    );
    assert_eq!(
        merged["metadata"],
        serde_json::json!({ "a": "1", "b": "2" })
    );
    let merged = call(
        Method::POST,
        &url,
        serde_json::json!({ "metadata": { "b": "3" } }),
    );
    assert_eq!(
        merged["metadata"],
        serde_json::json!({ "a": "1", "b": "3" })
    );
    let item = call(
        Method::PUT,
        &format!("{url}/heartbeat"),
        serde_json::json!({ "meta": { "heartbeat": "2026-01-01T00:00:00Z" } }),
    );
    assert_eq!(
        item["meta"],
        serde_json::json!({ "heartbeat": "2026-01-01T00:00:00Z" })
    );
    let all: serde_json::Value = s.cloud.get_json(&url).unwrap();
    assert_eq!(
        all["metadata"],
        serde_json::json!({ "a": "1", "b": "3", "heartbeat": "2026-01-01T00:00:00Z" })
    );
    assert_eq!(server.show()["metadata"], all["metadata"]);
    let one: serde_json::Value = s.cloud.get_json(&format!("{url}/a")).unwrap();
    assert_eq!(one["meta"], serde_json::json!({ "a": "1" }));
    // A body that does not name the URL's key is refused, as Nova refuses it.
    let mismatch = s.cloud.call(Method::PUT, &format!("{url}/other"), |r| {
        r.json(&serde_json::json!({ "meta": { "a": "x" } }))
    });
    assert!(
        matches!(&mismatch, Err(e) if e.to_string().contains("Request body and URI mismatch")),
        "{mismatch:?}"
    );

    drop(server);
    let report = s.finish();
    for (operation, count) in [
        ("ServerMetadataController.create", 2),
        ("ServerMetadataController.update", 2),
        ("ServerMetadataController.index", 1),
        ("ServerMetadataController.show", 1),
    ] {
        assert_eq!(
            report.calls(operation).len(),
            count,
            "{operation}: {:#}",
            report.0["calls"]
        );
    }
}
