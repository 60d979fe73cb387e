//! The token service for service accounts: client credentials (secret and `private_key_jwt`),
//! signing-key rotation, allowed networks, throttling of wrong secrets; one file per topic.

use super::*;

mod caches;
mod client_credentials;
mod networks;
mod private_key_jwt;
mod signing_keys;
mod throttling;
