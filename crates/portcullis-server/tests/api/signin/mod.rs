//! Signing in: passwords, TOTP, throttling, WebAuthn passkeys and security keys, ceremony
//! expiry, the sign-in pages and a real browser; one file per topic.

use super::*;

mod pages;
mod password;
mod webauthn;
