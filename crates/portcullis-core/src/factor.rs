//! The kinds of second factor a person can register.

/// A registered second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorKind {
    /// An RFC 6238 authenticator app.
    Totp,
    /// A passkey or security key (WebAuthn).
    Webauthn,
}

impl FactorKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Webauthn => "webauthn",
        }
    }

    /// The value of a stored or wire name; `None` for any other string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(Self::Totp),
            "webauthn" => Some(Self::Webauthn),
            _ => None,
        }
    }
}
