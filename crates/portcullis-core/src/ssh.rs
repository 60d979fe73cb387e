//! SSH user certificates from active grants (the `ssh-ca` target): which public keys may be
//! certified, how long a certificate lives, what it is called, and the OpenSSH key revocation
//! list (KRL) that takes one back before it expires.
//!
//! Invariants:
//! - A certificate never outlives the grants it was made from: `valid_before` is the earliest
//!   end among them, and at most the target's maximum after now; a grant that has ended (or
//!   ends within [`MIN_LIFETIME`]) yields no certificate at all.
//! - Only user keys worth trusting are certified: Ed25519, ECDSA (NIST P-256/384/521), their
//!   FIDO (`sk-`) forms, and RSA of at least [`MIN_RSA_BITS`] bits. DSA, short RSA, a
//!   certificate offered as a key and anything that does not parse are refused with a reason.
//! - The KRL is OpenSSH's binary format (PROTOCOL.krl): serial lists per CA key, serials
//!   ascending and unique, never serial 0. No crate writes it, so it is written here; the tests
//!   check it with the real `ssh-keygen -Q` and `sshd`.

use time::{Duration, OffsetDateTime};

/// The shortest RSA modulus certified (NIST SP 800-57: 3072 bits for use past 2030).
pub const MIN_RSA_BITS: usize = 3072;
/// `valid_after` is this far before now, for servers whose clocks run a little behind.
pub const CLOCK_SKEW: Duration = Duration::minutes(1);
/// The longest certificate when the target sets no maximum.
pub const DEFAULT_MAX_VALIDITY: Duration = Duration::hours(8);
/// The longest maximum a target may set.
pub const MAX_MAX_VALIDITY: Duration = Duration::hours(24);
/// A grant with less than this left gets no certificate (it would expire in transit).
pub const MIN_LIFETIME: Duration = Duration::seconds(5);
/// The extensions a certificate gets when its binding names none: a terminal, nothing else.
pub const DEFAULT_EXTENSIONS: &[&str] = &["permit-pty"];
/// The extensions OpenSSH knows for user certificates.
pub const KNOWN_EXTENSIONS: &[&str] = &[
    "no-touch-required",
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];
/// The longest public key line accepted (an RSA-16384 key is about 2.8 KB).
pub const MAX_KEY_LINE: usize = 8 * 1024;

/// Why a public key is not certified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    #[error("the public key is not an OpenSSH public key line (ssh-ed25519 AAAA… [comment])")]
    Unparsable,
    #[error("the public key line is longer than {MAX_KEY_LINE} bytes")]
    TooLong,
    #[error("a certificate is not a public key: send the key it certifies")]
    Certificate,
    #[error(
        "RSA keys must have at least {MIN_RSA_BITS} bits; this one has {0} (use ssh-keygen -t ed25519)"
    )]
    ShortRsa(usize),
    #[error("{0} keys are not certified (use ssh-keygen -t ed25519)")]
    Algorithm(String),
}

/// Parses an OpenSSH public key line and checks that it may be certified.
pub fn parse_user_key(line: &str) -> Result<ssh_key::PublicKey, KeyRefused> {
    use ssh_key::Algorithm;
    let line = line.trim();
    if line.len() > MAX_KEY_LINE {
        return Err(KeyRefused::TooLong);
    }
    if line
        .split_whitespace()
        .next()
        .is_some_and(|a| a.contains("-cert-v01@openssh.com"))
    {
        return Err(KeyRefused::Certificate);
    }
    let key = ssh_key::PublicKey::from_openssh(line).map_err(|_| KeyRefused::Unparsable)?;
    match key.algorithm() {
        Algorithm::Ed25519
        | Algorithm::SkEd25519
        | Algorithm::Ecdsa { .. }
        | Algorithm::SkEcdsaSha2NistP256 => Ok(key),
        Algorithm::Rsa { .. } => {
            let bits = key
                .key_data()
                .rsa()
                .and_then(|k| k.n.as_positive_bytes())
                .map(bit_length)
                .unwrap_or(0);
            if bits < MIN_RSA_BITS {
                Err(KeyRefused::ShortRsa(bits))
            } else {
                Ok(key)
            }
        }
        other => Err(KeyRefused::Algorithm(other.as_str().to_owned())),
    }
}

/// Bits of a big-endian unsigned integer without leading zeros.
fn bit_length(be: &[u8]) -> usize {
    let Some(pos) = be.iter().position(|b| *b != 0) else {
        return 0;
    };
    (be.len() - pos) * 8 - be[pos].leading_zeros() as usize
}

/// When a certificate starts and stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub valid_after: OffsetDateTime,
    pub valid_before: OffsetDateTime,
}

/// The validity of a certificate made at `now` from grants ending at `ends` (`None`: a
/// permanent active assignment), capped at `max` from now. `None` when no grant is given or
/// one has less than [`MIN_LIFETIME`] left.
pub fn validity(
    now: OffsetDateTime,
    ends: &[Option<OffsetDateTime>],
    max: Duration,
) -> Option<Validity> {
    if ends.is_empty() {
        return None;
    }
    let cap = now + max;
    let valid_before = ends.iter().map(|e| e.unwrap_or(cap).min(cap)).min()?;
    // Whole seconds, as the certificate carries them; rounded down so it never outlives a grant.
    let valid_before = valid_before.replace_nanosecond(0).ok()?;
    if valid_before - now < MIN_LIFETIME {
        return None;
    }
    Some(Validity {
        valid_after: (now - CLOCK_SKEW).replace_nanosecond(0).ok()?,
        valid_before,
    })
}

/// The certificate's key id: `portcullis:<person>:<grant ids, comma-separated>`, which
/// `sshd` logs at every login made with it.
pub fn key_id(person: &str, grant_ids: &[&str]) -> String {
    format!("portcullis:{person}:{}", grant_ids.join(","))
}

/// The extensions a certificate made from several grants carries: those every grant's
/// binding allows (a certificate cannot give one principal more than another's role allows).
pub fn common_extensions(per_grant: &[Vec<String>]) -> Vec<String> {
    let mut iter = per_grant.iter();
    let Some(first) = iter.next() else {
        return Vec::new();
    };
    let mut out: Vec<String> = first
        .iter()
        .filter(|e| iter.clone().all(|other| other.contains(e)))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Two bindings of the grants in one certificate give different force commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the roles you hold here give different force commands: ask for one role's certificate")]
pub struct ForceCommandsDiffer;

/// The `force-command` a certificate made from several grants carries: the one every binding
/// that sets one agrees on. `Err` when two bindings disagree (the person asks per role).
pub fn common_force_command(
    per_grant: &[Option<String>],
) -> Result<Option<String>, ForceCommandsDiffer> {
    let mut set = per_grant.iter().flatten();
    let Some(first) = set.next() else {
        return Ok(None);
    };
    if set.all(|c| c == first) {
        Ok(Some(first.clone()))
    } else {
        Err(ForceCommandsDiffer)
    }
}

const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;

/// An OpenSSH key revocation list of certificate serials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Krl {
    /// Increases whenever the list changes.
    pub version: u64,
    /// Seconds since the epoch.
    pub generated_at: u64,
    pub comment: String,
    /// Per CA key (its SSH wire encoding): the revoked serials it signed.
    pub revoked: Vec<(Vec<u8>, Vec<u64>)>,
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

impl Krl {
    /// The binary KRL, as `ssh-keygen -k` writes it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&KRL_MAGIC.to_be_bytes());
        put_u32(&mut out, KRL_FORMAT_VERSION);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.generated_at.to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes()); // flags
        put_string(&mut out, b""); // reserved
        put_string(&mut out, self.comment.as_bytes());
        for (ca_key, serials) in &self.revoked {
            let mut serials: Vec<u64> = serials.iter().copied().filter(|s| *s != 0).collect();
            serials.sort_unstable();
            serials.dedup();
            if serials.is_empty() {
                continue;
            }
            let mut list = Vec::with_capacity(serials.len() * 8);
            for s in &serials {
                list.extend_from_slice(&s.to_be_bytes());
            }
            let mut section = Vec::with_capacity(list.len() + ca_key.len() + 16);
            put_string(&mut section, ca_key);
            put_string(&mut section, b""); // reserved
            section.push(KRL_SECTION_CERT_SERIAL_LIST);
            put_string(&mut section, &list);
            out.push(KRL_SECTION_CERTIFICATES);
            put_string(&mut out, &section);
        }
        out
    }
}

/// Why bytes are not a KRL (what `portcullis targets ssh krl-sync` checks before it replaces a
/// server's file: a proxy's error page must never become the revocation list).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrlInvalid {
    #[error("not an OpenSSH KRL (bad magic or format version)")]
    Header,
    #[error("the KRL is truncated or a section is malformed")]
    Truncated,
}

/// The version and generation time of a KRL, after checking that its structure is whole.
pub fn krl_version(bytes: &[u8]) -> Result<(u64, u64), KrlInvalid> {
    let mut r = Reader(bytes);
    if r.u64()? != KRL_MAGIC || r.u32()? != KRL_FORMAT_VERSION {
        return Err(KrlInvalid::Header);
    }
    let version = r.u64()?;
    let generated = r.u64()?;
    r.u64()?; // flags
    r.string()?; // reserved
    r.string()?; // comment
    while !r.0.is_empty() {
        r.byte()?;
        r.string()?;
    }
    Ok((version, generated))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KrlInvalid> {
        if self.0.len() < n {
            return Err(KrlInvalid::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, KrlInvalid> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, KrlInvalid> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, KrlInvalid> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<&'a [u8], KrlInvalid> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIdR4LGbdGHbY4UtB8cuVHvpjSEIfPmPJJc2T+Nc3PAr me@host";

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).expect("time")
    }

    #[test]
    fn an_ed25519_key_is_accepted() {
        assert!(parse_user_key(ED25519).is_ok());
    }

    #[test]
    fn garbage_and_certificates_are_refused_with_their_reason() {
        assert_eq!(
            parse_user_key("not a key").expect_err("refused"),
            KeyRefused::Unparsable
        );
        assert_eq!(
            parse_user_key("").expect_err("refused"),
            KeyRefused::Unparsable
        );
        assert_eq!(
            parse_user_key("ssh-ed25519-cert-v01@openssh.com AAAA").expect_err("refused"),
            KeyRefused::Certificate
        );
        let long = format!("ssh-ed25519 {}", "A".repeat(MAX_KEY_LINE));
        assert_eq!(
            parse_user_key(&long).expect_err("refused"),
            KeyRefused::TooLong
        );
    }

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0, 0]), 0);
    }

    #[test]
    fn validity_ends_at_the_earliest_grant_and_the_cap() {
        let now = at(1_000_000);
        let v = validity(
            now,
            &[Some(at(1_003_600)), Some(at(1_001_800)), None],
            Duration::hours(8),
        )
        .expect("valid");
        assert_eq!(v.valid_before, at(1_001_800));
        assert_eq!(v.valid_after, at(1_000_000 - 60));
        let v = validity(now, &[None], Duration::hours(8)).expect("valid");
        assert_eq!(v.valid_before, at(1_000_000 + 8 * 3600));
    }

    #[test]
    fn no_certificate_for_no_grant_or_one_about_to_end() {
        let now = at(1_000_000);
        assert_eq!(validity(now, &[], Duration::hours(8)), None);
        assert_eq!(
            validity(now, &[Some(at(1_000_004))], Duration::hours(8)),
            None
        );
        assert_eq!(
            validity(now, &[Some(at(999_000))], Duration::hours(8)),
            None
        );
    }

    #[test]
    fn validity_never_rounds_past_a_grant() {
        let now = at(1_000_000);
        let end = at(1_000_100) + Duration::milliseconds(900);
        let v = validity(now, &[Some(end)], Duration::hours(8)).expect("valid");
        assert!(v.valid_before <= end);
        assert_eq!(v.valid_before, at(1_000_100));
    }

    #[test]
    fn combined_grants_keep_only_what_all_allow() {
        let a = vec!["permit-pty".to_owned(), "permit-port-forwarding".to_owned()];
        let b = vec!["permit-pty".to_owned()];
        assert_eq!(common_extensions(&[a.clone(), b]), vec!["permit-pty"]);
        assert_eq!(common_extensions(std::slice::from_ref(&a)).len(), 2);
        assert_eq!(
            common_force_command(&[None, Some("x".into())]),
            Ok(Some("x".into()))
        );
        assert_eq!(
            common_force_command(&[Some("x".into()), Some("y".into())]),
            Err(ForceCommandsDiffer)
        );
        assert_eq!(common_force_command(&[None, None]), Ok(None));
    }

    #[test]
    fn key_id_names_person_and_grants() {
        assert_eq!(key_id("ada", &["r1", "a2"]), "portcullis:ada:r1,a2");
    }

    #[test]
    fn krl_round_trips_its_header_and_sorts_serials() {
        let krl = Krl {
            version: 7,
            generated_at: 1_700_000_000,
            comment: "portcullis".into(),
            revoked: vec![
                (b"ca".to_vec(), vec![9, 0, 3, 9]),
                (b"empty".to_vec(), vec![]),
            ],
        };
        let bytes = krl.encode();
        assert_eq!(krl_version(&bytes), Ok((7, 1_700_000_000)));
        // One section: the CA with serials 3 and 9 (0 dropped, duplicate once).
        let tail = &bytes[bytes.len() - 16..];
        assert_eq!(tail, [3u64.to_be_bytes(), 9u64.to_be_bytes()].concat());
        assert_eq!(
            krl_version(&bytes[..bytes.len() - 1]),
            Err(KrlInvalid::Truncated)
        );
        assert_eq!(krl_version(b"<html>oops</html>"), Err(KrlInvalid::Header));
    }
}
