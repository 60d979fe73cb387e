//! Text from outside: the one rule for characters that may not appear in identifiers and free
//! text, and the escaping of text shown on a terminal.
//!
//! Refused everywhere a request names something or writes free text (client ids, names,
//! display names, reasons, justifications, descriptions): control characters (NUL included —
//! PostgreSQL refuses it in text, and one such value once failed a whole group-commit batch),
//! bidirectional controls (which make `evil` U+202E `gnp.exe` read as something else) and zero-width
//! and other invisible format characters (which make two names that look the same differ).
//! Values already stored are escaped when shown ([`escape_for_terminal`]), so a terminal never
//! interprets an escape sequence that came from a request.

use std::borrow::Cow;

/// Whether `c` is a control, bidirectional-control or invisible formatting character.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                      // soft hyphen
            | '\u{061C}'                    // Arabic letter mark
            | '\u{180E}'                    // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'       // zero-width space, (non-)joiner, LRM, RLM
            | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'       // bidi isolates
            | '\u{206A}'..='\u{206F}'       // deprecated format characters
            | '\u{FEFF}'                    // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation
            | '\u{E0000}'..='\u{E007F}' // tags
        )
}

/// Whether `s` holds any character [`is_invisible`] refuses.
pub fn has_invisible(s: &str) -> bool {
    s.chars().any(is_invisible)
}

/// Like [`has_invisible`], but a line break is allowed (multi-line free text such as a policy
/// description).
pub fn has_invisible_but_newlines(s: &str) -> bool {
    s.chars().any(|c| c != '\n' && is_invisible(c))
}

/// `s` with every [`is_invisible`] character written as `\u{…}`, for terminals and tables.
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    if !has_invisible(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invisible_characters_are_refused() {
        for bad in [
            "a\0b",
            "\u{1b}[31mred",
            "evil\u{202e}gnp.exe",
            "ad\u{200b}min",
            "\u{feff}name",
            "line\nbreak",
            "tab\there",
            "\u{2066}iso\u{2069}",
            "\u{e0041}tag",
        ] {
            assert!(has_invisible(bad), "{bad:?}");
        }
        for good in [
            "Ada Lovelace",
            "Zoë Ångström",
            "李小龙",
            "O'Brien-Smith",
            "🔐 ops",
        ] {
            assert!(!has_invisible(good), "{good:?}");
        }
        assert!(!has_invisible_but_newlines("two\nlines"));
        assert!(has_invisible_but_newlines("two\r\nlines"));
    }

    #[test]
    fn terminals_see_escapes_not_control_sequences() {
        assert_eq!(escape_for_terminal("plain"), "plain");
        assert_eq!(escape_for_terminal("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape_for_terminal("a\u{202e}b"), "a\\u{202e}b");
    }

    proptest! {
        #[test]
        fn escaped_text_holds_nothing_invisible(s in any::<String>()) {
            prop_assert!(!has_invisible(&escape_for_terminal(&s)));
        }
    }
}
