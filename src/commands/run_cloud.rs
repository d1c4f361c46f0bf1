//! What a build run holds in the cloud besides packer's server: its own key pair (made
//! here, deleted on every way out, `sweep`'s when the tool is killed) and the lease its
//! servers carry while the run lives (src/run_marks.rs).

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use secrecy::SecretString;

use crate::error_chain::Chain;
use crate::openstack::client::{Cloud, Reconnect};
use crate::openstack::compute::{is_busy, is_gone, Nova};
use crate::run_key::RunKey;
use crate::run_marks::{
    self, KeypairMarks, ALIVE_UNTIL_KEY, IMAGE_PROPERTY, LEASE_PERIODS, RUN_ID_KEY,
};

/// The run's key pair in Nova: deleted when dropped (success, failure, deadline, Ctrl-C,
/// an error on the way), so only a killed tool leaves it, for `sweep`.
pub struct RunKeypair<'a> {
    cloud: &'a Cloud,
    pub name: String,
    /// The private key, for the 0600 file packer reads.
    pub private_key: SecretString,
    /// The public key (an OpenSSH line), which a server of the key pair authorizes.
    pub public_key: String,
    deleted: bool,
    /// Where the deletion's outcome is told (a progress line).
    info: &'a dyn Fn(&str),
}

impl<'a> RunKeypair<'a> {
    /// Makes an ed25519 key and imports its public half as the key pair `marks` names.
    pub fn import(
        cloud: &'a Cloud,
        marks: &KeypairMarks,
        info: &'a dyn Fn(&str),
    ) -> Result<RunKeypair<'a>> {
        let name = marks.name();
        let key = RunKey::generate(&name)?;
        Nova::new(cloud)
            .and_then(|nova| nova.import_keypair(&name, &key.public))
            .with_context(|| format!("importing the run's SSH key as key pair `{name}`"))?;
        info(&format!("build: key pair `{name}` (ed25519) imported"));
        Ok(RunKeypair {
            cloud,
            name,
            private_key: SecretString::from(key.private_openssh()),
            public_key: key.public.clone(),
            deleted: false,
            info,
        })
    }

    /// Deletes the key pair now, saying how it went (a failure leaves it to `sweep`).
    pub fn delete(mut self) {
        self.delete_once();
    }

    fn delete_once(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        let result = Nova::new(self.cloud).and_then(|nova| nova.delete_keypair(&self.name));
        match result {
            Ok(()) => (self.info)(&format!("build: key pair `{}` deleted", self.name)),
            Err(e) if is_gone(&e) => {}
            Err(e) => (self.info)(&format!(
                "build: warning: deleting key pair `{}` failed ({}); `uworker-image sweep` removes it once the run's deadline has passed",
                self.name,
                Chain(&e)
            )),
        }
    }
}

impl Drop for RunKeypair<'_> {
    fn drop(&mut self) {
        self.delete_once();
    }
}

/// Renews the lease on the run's servers every `period` from a thread of its own (with a
/// session of its own), so that no `sweep`, however its limit is set, takes them while the
/// run lives. Stops when dropped; never waits for a call in flight.
pub struct Lease {
    stop: Option<mpsc::Sender<()>>,
}

impl Lease {
    pub fn start(
        cloud: Reconnect,
        definition: String,
        run_id: String,
        period: Duration,
        warn: impl Fn(&str) + Send + 'static,
    ) -> Lease {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let cloud = match cloud.connect() {
                Ok(cloud) => cloud,
                Err(e) => {
                    return warn(&format!(
                        "build: warning: no lease for the run's server: logging in failed ({}); a sweep by age (--older-than) could take it",
                        Chain(&e)
                    ))
                }
            };
            let mut failing = false;
            loop {
                match stopped.recv_timeout(period) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let until = SystemTime::now() + period * LEASE_PERIODS;
                match renew(&cloud, &definition, &run_id, until) {
                    Ok(()) => failing = false,
                    // Said once per spell of failures: the cloud may falter for a while.
                    Err(e) if !failing => {
                        failing = true;
                        warn(&format!(
                            "build: warning: renewing the run's lease on its server failed ({e:#}); trying again in {}",
                            humantime::format_duration(period)
                        ));
                    }
                    Err(_) => {}
                }
            }
        });
        Lease { stop: Some(stop) }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The thread ends at its next wake-up (or with the process).
        drop(self.stop.take());
    }
}

/// Sets `uworker_alive_until` on every server of the run.
fn renew(cloud: &Cloud, definition: &str, run_id: &str, until: SystemTime) -> Result<()> {
    let nova = Nova::new(cloud)?;
    let items = BTreeMap::from([(ALIVE_UNTIL_KEY.to_string(), run_marks::stamp(until))]);
    for server in nova.servers()? {
        let meta = |k: &str| server.metadata.get(k).map(String::as_str);
        if meta(IMAGE_PROPERTY) == Some(definition) && meta(RUN_ID_KEY) == Some(run_id) {
            match nova.set_server_metadata(&server.id, &items) {
                // A server still building, or being stopped or saved, takes no metadata
                // (409): that is the run going on. Its lease is renewed once Nova is done.
                Err(e) if is_gone(&e) || is_busy(&e) => {}
                other => other?,
            }
        }
    }
    Ok(())
}
