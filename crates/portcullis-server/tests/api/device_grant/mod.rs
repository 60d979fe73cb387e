//! The device authorization grant (RFC 8628), also approved in a browser; refresh-token
//! rotation; access tokens as API credentials; long-running clients refreshing by themselves.

use super::*;

mod access_tokens;
mod device_codes;
