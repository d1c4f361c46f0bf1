//! Floating IPs: a configured one (by address), one from the pool, and a configured one
//! left on a dead run's server (detached by `sweep`, never released).

use super::*;

/// A floating IP allocated on the cloud's external network, as a user does beforehand
/// (`openstack floating ip create public`); released when dropped.
struct FloatingIp<'a> {
    cloud: &'a Cloud,
    id: String,
    address: String,
}

impl FloatingIp<'_> {
    fn url(&self) -> String {
        let network = self.cloud.endpoint("network").unwrap();
        format!("{network}/v2.0/floatingips/{}", self.id)
    }

    /// Neutron shows it on no port now.
    fn assert_detached(&self) {
        let now: serde_json::Value = self
            .cloud
            .call(Method::GET, &self.url(), |r| r)
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            now["floatingip"]["port_id"],
            serde_json::Value::Null,
            "{now:#}"
        );
    }
}

impl Drop for FloatingIp<'_> {
    fn drop(&mut self) {
        let released = self.cloud.call(Method::DELETE, &self.url(), |r| r);
        assert!(released.is_ok() || std::thread::panicking(), "{released:?}");
    }
}

fn allocate_floating_ip(cloud: &Cloud) -> FloatingIp<'_> {
    let network = cloud.endpoint("network").unwrap();
    let networks: serde_json::Value = cloud
        .call(
            Method::GET,
            &format!("{network}/v2.0/networks?router:external=true"),
            |r| r,
        )
        .unwrap()
        .json()
        .unwrap();
    let public = networks["networks"][0]["id"].as_str().unwrap();
    let body = serde_json::json!({"floatingip": {"floating_network_id": public}});
    let created: serde_json::Value = cloud
        .call(Method::POST, &format!("{network}/v2.0/floatingips"), |r| {
            r.json(&body)
        })
        .unwrap()
        .json()
        .unwrap();
    let fip = &created["floatingip"];
    FloatingIp {
        cloud,
        id: fip["id"].as_str().unwrap().to_string(),
        address: fip["floating_ip_address"].as_str().unwrap().to_string(),
    }
}

#[test]
fn a_configured_floating_ip_is_how_packer_reaches_the_server() {
    let s = Scenario::start();
    let floating = allocate_floating_ip(&s.cloud);
    let (fip, address) = (floating.id.clone(), floating.address.clone());
    let (_, def) = s.small_definition("e2e-fip-", PROVISION_HOSTNAME);
    // The seed's variable holds the address; packer's `floating_ip` takes the ID, which
    // `build` looks up.
    let var = format!("openstack_free_floating_ip={address}");
    let (run, rec) = build(&s, def.path(), &plain_config(), &["--var", &var], &[]);
    assert_built(&run, &rec);
    for said in [
        format!("build: floating IP {address} is {fip}"),
        format!("Using ssh communicator to connect: {address}"),
    ] {
        assert!(run.stderr.contains(&said), "{said}:\n{}", run.stderr);
    }
    let report = s.compute.report();
    assert_eq!(report.calls("neutron PUT floatingips").len(), 1);
    assert_eq!(report.calls("InterfaceAttachmentController.index").len(), 1);

    // A target's own floating_ip is in the template as written: an address there is
    // refused before packer, with the ID to write instead.
    s.compute.reset();
    let (_, def) = s.small_definition_with(
        "e2e-fiplit-",
        &format!("floating_ip = \"{address}\""),
        "#!/bin/sh\ntrue\n",
    );
    let (run, _) = build(&s, def.path(), &plain_config(), &[], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("floating_ip")
            && run
                .stderr
                .contains(&format!("write \"{fip}\" (the ID of {address})")),
        "{}",
        run.stderr
    );
    assert!(s
        .compute
        .report()
        .calls("ServersController.create")
        .is_empty());

    // The server's deletion freed the address; the floating IP itself is the user's.
    floating.assert_detached();
    drop(floating);
    s.finish();
}

#[test]
fn a_floating_ip_from_the_pool_is_allocated_and_released_by_packer() {
    let s = Scenario::start();
    let (_, def) = s.small_definition_with("e2e-pool-", FIP_FROM_POOL, PROVISION_HOSTNAME);
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &[]);
    assert_built(&run, &rec);
    let report = s.finish();
    assert_eq!(
        report.calls("neutron POST floatingips").len(),
        1,
        "{:#}",
        report.0["calls"]
    );
    assert_eq!(
        report.calls("neutron DELETE floatingips").len(),
        1,
        "{:#}",
        report.0["calls"]
    );
}

#[test]
fn a_configured_floating_ip_left_on_a_dead_server_is_detached_not_released() {
    let s = Scenario::start();
    let floating = allocate_floating_ip(&s.cloud);
    let (_, def) = s.small_definition("e2e-killedfip-", PROVISION_FOREVER);
    let var = format!("openstack_free_floating_ip={}", floating.address);
    // The build as kill_build_mid_provisioning runs it, with the seed's floating IP.
    let tmp = tempfile::tempdir().unwrap();
    kill_mid_provisioning(spawn_build_with(
        &s,
        &def,
        tmp.path(),
        &["--var", &var],
        &QUIET_LEASE,
    ));
    let left = s.compute.report();
    assert_eq!(
        left.0["floating_ips"][0]["id"],
        floating.id.as_str(),
        "{:#}",
        left.0
    );
    assert!(left.0["floating_ips"][0]["port_id"].is_string(), "attached");

    // Swept without the var-file (the daily sweep has none): the server says its run
    // took no address from a pool, so the address is someone's, and stays theirs.
    let (run, report) = sweep(&s, def.path(), &["--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let items = swept(&report);
    assert!(
        items.contains(&("floating_ip".into(), floating.id.clone(), "detach".into())),
        "{report:#}"
    );
    assert_eq!(items.len(), 3, "{report:#}");
    floating.assert_detached();
    let report = s.compute.report();
    assert_eq!(
        report.calls("neutron PUT floatingips").len(),
        2,
        "attach, detach"
    );
    assert!(report.calls("neutron DELETE floatingips").is_empty());
    drop(floating);
    s.finish();
}
