//! Text that came from somewhere else — a station's titles and reasons, a sound card's
//! error, central's answers — made safe to show. Control characters (terminal escape
//! sequences among them) become U+FFFD, so a string from the network can never move an
//! operator's cursor, rewrite what the screen shows or hide a line.

/// The replacement for every control character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// `text` with every control character replaced (newlines and tabs too: every field
/// this is used for is one line).
pub fn printable(text: &str) -> String {
    if is_printable(text) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { REPLACEMENT } else { c }).collect()
}

/// Whether `text` holds no control character.
pub fn is_printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// [`printable`] in place, for an optional field.
pub fn clean(field: &mut Option<String>) {
    if let Some(text) = field.as_mut().filter(|t| !is_printable(t)) {
        *text = printable(text);
    }
}

/// One CSV field: [`printable`], quoted when it holds a comma or a quote.
pub fn csv_field(text: &str) -> String {
    let text = printable(text);
    if text.contains([',', '"']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_line_breaks_are_replaced_and_letters_kept() {
        assert_eq!(printable("Bản tin sáng"), "Bản tin sáng");
        assert_eq!(printable("ok\u{1b}[2J\u{1b}]0;x\u{7}"), "ok\u{FFFD}[2J\u{FFFD}]0;x\u{FFFD}");
        assert_eq!(printable("a\nb\r\tc\u{9b}"), "a\u{FFFD}b\u{FFFD}\u{FFFD}c\u{FFFD}");
        let mut field = Some("x\u{1b}".to_string());
        clean(&mut field);
        assert_eq!(field.as_deref(), Some("x\u{FFFD}"));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed_and_never_carry_control_characters() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("a\nb"), "a\u{FFFD}b");
    }
}
