//! Password policy after NIST SP 800-63B: length, not composition.
//!
//! At least 12 characters (15 for accounts that are or may become privileged), at most 256; no
//! composition rules; refused when zxcvbn scores it below 3, or when it contains the user's name
//! or email (or their local part). Lengths count Unicode scalar values, as 800-63B asks.

use serde::Serialize;

pub const MIN_LEN: usize = 12;
pub const MIN_LEN_PRIVILEGED: usize = 15;
pub const MAX_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PasswordPolicyError {
    #[error("password must be at least {min} characters")]
    TooShort { min: usize },
    #[error("password must be at most {max} characters")]
    TooLong { max: usize },
    #[error("password must not contain the user name or email")]
    ContainsIdentity,
    #[error("password is too easy to guess (strength {score}/4, at least 3 needed){}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    TooWeak { score: u8, hint: Option<String> },
}

/// Checks `password` for the account `user_name` (`email` if known).
pub fn check(
    password: &str,
    user_name: &str,
    email: Option<&str>,
    privileged: bool,
) -> Result<(), PasswordPolicyError> {
    let len = password.chars().count();
    let min = if privileged {
        MIN_LEN_PRIVILEGED
    } else {
        MIN_LEN
    };
    if len < min {
        return Err(PasswordPolicyError::TooShort { min });
    }
    if len > MAX_LEN {
        return Err(PasswordPolicyError::TooLong { max: MAX_LEN });
    }
    let lower = password.to_lowercase();
    let mut identity: Vec<String> = vec![user_name.to_lowercase()];
    if let Some(e) = email {
        identity.push(e.to_lowercase());
        if let Some((local, _)) = e.split_once('@') {
            identity.push(local.to_lowercase());
        }
    }
    if identity
        .iter()
        .any(|i| i.chars().count() >= 3 && lower.contains(i.as_str()))
    {
        return Err(PasswordPolicyError::ContainsIdentity);
    }
    let inputs: Vec<&str> = identity.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    let score = u8::from(entropy.score());
    if score < 3 {
        let hint = entropy
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string());
        return Err(PasswordPolicyError::TooWeak { score, hint });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert_eq!(
            check("short", "alice", None, false),
            Err(PasswordPolicyError::TooShort { min: 12 })
        );
        assert_eq!(
            check("correct horse b", "alice", None, true).err(),
            None,
            "15 characters pass for privileged accounts"
        );
        assert_eq!(
            check("tangerine-kt9", "alice", None, true),
            Err(PasswordPolicyError::TooShort { min: 15 })
        );
        assert_eq!(
            check(&"x".repeat(257), "alice", None, false),
            Err(PasswordPolicyError::TooLong { max: 256 })
        );
        // Unicode counts characters, not bytes: 12 four-byte characters pass the length rule.
        assert!(!matches!(
            check(&"🦀".repeat(12), "alice", None, false),
            Err(PasswordPolicyError::TooShort { .. })
        ));
    }

    #[test]
    fn identity_and_strength() {
        assert_eq!(
            check("my-name-is-Alice-really", "alice", None, false),
            Err(PasswordPolicyError::ContainsIdentity)
        );
        assert_eq!(
            check(
                "zebra.bob.smith.river",
                "robert",
                Some("bob.smith@example.org"),
                false
            ),
            Err(PasswordPolicyError::ContainsIdentity)
        );
        assert!(matches!(
            check("passwordpassword", "alice", None, false),
            Err(PasswordPolicyError::TooWeak { .. })
        ));
        assert!(matches!(
            check("123456789012", "alice", None, false),
            Err(PasswordPolicyError::TooWeak { .. })
        ));
        assert_eq!(check("violet-kettle-orbit-93", "alice", None, true), Ok(()));
    }
}
