//! Exit codes, as documented: 0 ok (built or skipped), 1 build or validation failure,
//! 2 bad input or config, 3 external service failure after retries, 130 interrupted.

use std::process::ExitCode;

use crate::definition::DefinitionError;
use crate::fingerprint::FingerprintError;
use crate::github::GitHubError;
use crate::inputs::InputError;
use crate::jobapi::JobApiError;
use crate::openstack::client::OpenStackError;
use crate::openstack::clouds::CloudsError;
use crate::openstack::openrc::OpenRcError;
use crate::packer::PackerError;
use crate::report::ReportError;
use crate::seed::SeedError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Failed = 1,
    BadInput = 2,
    External = 3,
    Interrupted = 130,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> ExitCode {
        ExitCode::from(code as u8)
    }
}

/// The exit code for an error that ended a command.
pub fn classify(error: &anyhow::Error) -> Code {
    for cause in error.chain() {
        if cause.is::<DefinitionError>()
            || cause.is::<InputError>()
            || cause.is::<SeedError>()
            || cause.is::<FingerprintError>()
            || cause.is::<CloudsError>()
            || cause.is::<clap::Error>()
            || cause.is::<ReportError>()
        {
            return Code::BadInput;
        }
        if let Some(openrc) = cause.downcast_ref::<OpenRcError>() {
            return match openrc {
                OpenRcError::Interrupted => Code::Interrupted,
                _ => Code::BadInput,
            };
        }
        if let Some(cloud) = cause.downcast_ref::<OpenStackError>() {
            return if cloud.is_external() {
                Code::External
            } else {
                Code::BadInput
            };
        }
        if let Some(packer) = cause.downcast_ref::<PackerError>() {
            return match packer {
                PackerError::NotFound { .. } | PackerError::Version { .. } => Code::BadInput,
                PackerError::Plugin { .. } => Code::External,
                PackerError::Run { .. } => Code::Failed,
            };
        }
        if let Some(github) = cause.downcast_ref::<GitHubError>() {
            return if github.is_bad_input() {
                Code::BadInput
            } else {
                Code::External
            };
        }
        if let Some(api) = cause.downcast_ref::<JobApiError>() {
            return match api {
                JobApiError::Unreachable(_) | JobApiError::Redirect(_) => Code::External,
                JobApiError::Refused(_) | JobApiError::NoToken => Code::BadInput,
            };
        }
    }
    Code::Failed
}
