//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of skew either way.
//!
//! totp-rs computes codes; this module adds what the crate leaves to its caller: **a time step
//! accepted once is never accepted again** (the caller stores the last accepted step and passes
//! it back in), and codes that are not exactly six ASCII digits are refused as malformed before
//! any comparison. Time is a parameter.

use totp_rs::{Algorithm, Builder, Totp};

pub const DIGITS: u8 = 6;
pub const STEP_SECONDS: u64 = 30;
pub const SKEW_STEPS: u16 = 1;
/// Length of a generated secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;
pub const ISSUER: &str = "Portcullis";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the code must be exactly 6 digits")]
    Malformed,
    #[error("the code is not valid")]
    Invalid,
    #[error("this code was already used; wait for the next one")]
    Replayed,
    #[error("the TOTP secret is unusable")]
    BadSecret,
}

fn totp(secret: &[u8], account: &str) -> Result<Totp, TotpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|_| TotpError::BadSecret)
}

/// Checks `code` at `now_unix` seconds. `last_step` is the step accepted last time, if any.
/// Returns the matched step, which the caller must store as the new `last_step`.
pub fn verify(
    secret: &[u8],
    code: &str,
    now_unix: u64,
    last_step: Option<u64>,
) -> Result<u64, TotpError> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    let t = totp(secret, "x")?;
    let step = t.check(code, now_unix).ok_or(TotpError::Invalid)?;
    if last_step.is_some_and(|last| step <= last) {
        return Err(TotpError::Replayed);
    }
    Ok(step)
}

/// The code for `now_unix` (for tests and for the CLI's own checks).
pub fn generate(secret: &[u8], now_unix: u64) -> Result<String, TotpError> {
    Ok(totp(secret, "x")?.generate(now_unix).to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret: &[u8], account: &str) -> Result<String, TotpError> {
    totp(secret, account)?
        .to_url()
        .map_err(|_| TotpError::BadSecret)
}

/// The secret in base32 (RFC 4648, no padding), for manual entry.
pub fn base32(secret: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in secret {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 (RFC 4648; case-insensitive, padding and spaces ignored).
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.chars().filter(|c| *c != '=' && *c != ' ') {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA-1; six digits are the last six of the eight-digit values.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        for (t, code8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(generate(RFC_SECRET, t).expect("code"), &code8[2..], "T={t}");
            assert!(verify(RFC_SECRET, &code8[2..], t, None).is_ok());
        }
    }

    #[test]
    fn skew_and_replay() {
        let now = 1_700_000_000;
        let prev = generate(RFC_SECRET, now - 30).expect("code");
        let next = generate(RFC_SECRET, now + 30).expect("code");
        let far = generate(RFC_SECRET, now - 90).expect("code");
        let step = verify(RFC_SECRET, &prev, now, None).expect("one step back accepted");
        assert_eq!(
            verify(RFC_SECRET, &prev, now, Some(step)),
            Err(TotpError::Replayed)
        );
        let step2 = verify(RFC_SECRET, &next, now, Some(step)).expect("next step accepted");
        assert!(step2 > step);
        let cur = generate(RFC_SECRET, now).expect("code");
        assert_eq!(
            verify(RFC_SECRET, &cur, now, Some(step2)),
            Err(TotpError::Replayed),
            "older than the last accepted"
        );
        if far != cur && far != prev && far != next {
            assert_eq!(verify(RFC_SECRET, &far, now, None), Err(TotpError::Invalid));
        }
    }

    #[test]
    fn malformed_codes() {
        for bad in ["12345", "1234567", "12a456", "", " 12345", "１２３４５６"] {
            assert_eq!(
                verify(RFC_SECRET, bad, 59, None),
                Err(TotpError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uri_and_base32() {
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri(RFC_SECRET, "alice").expect("uri");
        assert!(uri.starts_with("otpauth://totp/Portcullis:alice?"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
    }
}
