//! Shared helpers of the API tests, one file per kind of set-up (servers, sign-in, tokens,
//! browsers, receivers, break-glass, ...). Every topic module takes them all with `use super::*;`:
//! they are re-exported here and from the binary's root.

pub(crate) use base64::Engine;
pub(crate) use portcullis_client::ClientError;
pub(crate) use portcullis_client::{Client, EventFilter};
pub(crate) use portcullis_core::api::{
    BootstrapRequest, CreateGroupRequest, CreateServiceAccountRequest, CreateUserRequest,
    GroupMemberRequest, PasswordChangeRequest, PasswordSignInRequest, TotpConfirmRequest,
    TotpEnrolRequest, TotpSignInRequest,
};
pub(crate) use portcullis_core::api::{
    CreateActivationRequest, CreateAssignmentRequest, DecisionRequest, RoleSettingsUpdate,
};
pub(crate) use portcullis_core::api::{
    WebauthnChallenge, WebauthnFinishRequest, WebauthnRegisterRequest, WebauthnSignInRequest,
};
pub(crate) use portcullis_core::breakglass as bg;
pub(crate) use portcullis_core::totp;
pub(crate) use portcullis_server::{Application, BuildOptions, Config, StartError};
pub(crate) use portcullis_store::testing::fresh_postgres_url;
pub(crate) use secrecy::SecretString;
pub(crate) use std::collections::BTreeSet;
pub(crate) use std::os::unix::fs::PermissionsExt;
pub(crate) use tokio::sync::oneshot;
pub(crate) use webauthn_authenticator_rs::WebauthnAuthenticator;
pub(crate) use webauthn_authenticator_rs::softpasskey::SoftPasskey;
pub(crate) use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

mod alerts;
mod audit;
mod breakglass;
mod conditional_access;
mod http;
mod oidc;
mod roles;
mod signin;
mod spawn;
mod tokens;
mod webauthn;

pub(crate) use alerts::*;
pub(crate) use audit::*;
pub(crate) use breakglass::*;
pub(crate) use conditional_access::*;
pub(crate) use http::*;
pub(crate) use oidc::*;
pub(crate) use roles::*;
pub(crate) use signin::*;
pub(crate) use spawn::*;
pub(crate) use tokens::*;
pub(crate) use webauthn::*;
