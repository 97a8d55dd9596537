//! Values a person gave (flags, file contents, environment variables, a request's body) echoed
//! in error lines; here so that the probe, the agent and the collector escape them alike.
//! A value may hold newlines or terminal escape sequences, or be megabytes long: echoed raw it
//! would forge extra log lines, recolour or rewrite the terminal, or flood journald. So every
//! echoed value goes through [`shown`], and every error line through [`line`].

/// How many characters of a value an error line shows.
pub const MAX_SHOWN: usize = 200;
/// How many characters an error line has at most (a message quoting a few shown values).
pub const MAX_LINE: usize = 1000;

/// `value` with its control characters escaped (`\n`, `\x1b`, `\u{9b}`...), the userinfo of
/// any URL in it hidden (`https://***@host`), and cut to [`MAX_SHOWN`] characters followed
/// by "…".
pub fn shown(value: &str) -> String {
    escape(&hide_userinfo(value), MAX_SHOWN)
}

/// A path as [`shown`] shows a value.
pub fn shown_path(path: &std::path::Path) -> String {
    shown(&path.display().to_string())
}

/// A whole error line: control characters escaped, URLs' userinfo hidden, cut to [`MAX_LINE`]
/// characters. Values in it were already shown (escaped text has no control characters left,
/// so nothing is escaped twice).
pub fn line(message: &str) -> String {
    escape(&hide_userinfo(message), MAX_LINE)
}

/// `text` with the userinfo of every URL in it replaced by "***": a value echoed back may be a
/// URL with a password given where it does not belong (`timeout = "https://u:pw@host"`), or a
/// parser's message may quote one. A URL ends at a blank, a quote or a backtick.
fn hide_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        match url.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&url[at..]);
            }
            None => out.push_str(url),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn escape(value: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in value.chars() {
        let piece = match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if (c as u32) < 0x20 || c == '\x7f' => format!("\\x{:02x}", c as u32),
            // C1 controls (a lone 0x9b is CSI on many terminals) and the bidirectional
            // overrides that reorder what the reader sees.
            c if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                format!("\\u{{{:x}}}", c as u32)
            }
            c => c.to_string(),
        };
        let len = piece.chars().count();
        if count + len > max {
            out.push('…');
            return out;
        }
        count += len;
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("a\x1b[31mb\nc\td"), "a\\x1b[31mb\\nc\\td");
        assert_eq!(shown("x\u{9b}y\u{202e}z"), "x\\u{9b}y\\u{202e}z");
        assert_eq!(shown("bücket ✓"), "bücket ✓");
        assert_eq!(line(&shown("a\nb")), "a\\nb", "nothing escaped twice");
    }

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            shown("x = \"https://u:pw@host:1/p\" and ftp://a@b"),
            "x = \"https://***@host:1/p\" and ftp://***@b"
        );
        assert_eq!(shown("http://***@proxy"), "http://***@proxy");
        assert_eq!(line("no url @ here"), "no url @ here");
    }

    #[test]
    fn long_values_are_cut() {
        let s = shown(&"a".repeat(1_000_000));
        assert_eq!(s.chars().count(), MAX_SHOWN + 1);
        assert!(s.ends_with('…'));
        let s = shown(&"\x01".repeat(1_000_000));
        assert!(s.chars().count() <= MAX_SHOWN + 1, "{s}");
        assert_eq!(shown(&"a".repeat(MAX_SHOWN)), "a".repeat(MAX_SHOWN));
        assert!(line(&"b".repeat(5000)).len() < 1100);
    }
}
