//! The build's own SSH key: ed25519, made in this process for one run. Packer's openstack
//! builder would otherwise have Nova generate an RSA key pair, and HashiCorp's packer
//! before 1.8.1 signs with RSA only as `ssh-rsa` (SHA-1), which OpenSSH 8.8 and later
//! refuse: no login to an Ubuntu 24.04 or Debian 12 server. Nova from microversion 2.92 on
//! generates no key at all.

use secrecy::{ExposeSecret, SecretString};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("making the build's SSH key (ed25519)")]
pub struct RunKeyError(#[source] ssh_key::Error);

impl crate::exit::Coded for RunKeyError {
    /// The machine's own failure (its random source), neither the input's nor a service's.
    fn code(&self) -> crate::exit::Code {
        crate::exit::Code::Failed
    }
}

/// A fresh key: the public half for Nova, the private half (OpenSSH format) for packer.
pub struct RunKey {
    /// `ssh-ed25519 AAAA… <comment>`
    pub public: String,
    private: SecretString,
}

impl RunKey {
    pub fn generate(comment: &str) -> Result<RunKey, RunKeyError> {
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(RunKeyError)?;
        key.set_comment(comment);
        let private = key.to_openssh(LineEnding::LF).map_err(RunKeyError)?;
        let public = key.public_key().to_openssh().map_err(RunKeyError)?;
        Ok(RunKey {
            public,
            private: SecretString::from(private.as_str()),
        })
    }

    /// The private key in OpenSSH's format: write it only to a 0600 file.
    pub fn private_openssh(&self) -> &str {
        self.private.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_a_new_ed25519_key_whose_halves_match() {
        let a = RunKey::generate("run 1").unwrap();
        let b = RunKey::generate("run 1").unwrap();
        assert!(a.public.starts_with("ssh-ed25519 AAAA"), "{}", a.public);
        assert!(a.public.ends_with(" run 1"), "{}", a.public);
        assert_ne!(a.public, b.public);
        let private = PrivateKey::from_openssh(a.private_openssh()).unwrap();
        assert_eq!(private.algorithm(), Algorithm::Ed25519);
        assert!(
            !private.is_encrypted(),
            "packer reads it without a passphrase"
        );
        assert_eq!(private.public_key().to_openssh().unwrap(), a.public);
        assert!(a
            .private_openssh()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    }
}
