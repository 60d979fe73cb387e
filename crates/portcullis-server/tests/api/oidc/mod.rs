//! OpenID Connect: authorization code with PKCE for relying parties, pages, ID tokens, userinfo,
//! and bad input at every endpoint.

use super::*;

mod bad_input;
mod relying_party;
mod signing_algs;
