//! Token files: the ingest tokens (`label token` per line) and the read token. Re-read when
//! the file's mtime or size changes, so rotating a token needs no restart; a file that turns
//! bad keeps the last good tokens (and says so in the log).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use subtle::ConstantTimeEq;
use tracing::warn;

use crate::error::ConfigError;

/// (label, token) pairs.
pub type Tokens = Vec<(String, Vec<u8>)>;
type Parser = fn(&str) -> Result<Tokens, String>;

#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
    parse: Parser,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    stamp: Option<(SystemTime, u64)>,
    tokens: Tokens,
}

impl SecretFile {
    pub fn open(path: PathBuf, parse: Parser) -> Result<SecretFile, ConfigError> {
        let (stamp, tokens) = load(&path, parse)?;
        Ok(SecretFile {
            path,
            parse,
            state: Mutex::new(State {
                stamp: Some(stamp),
                tokens,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn labels(&self) -> Vec<String> {
        self.lock().tokens.iter().map(|(l, _)| l.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The label of the token presented, if it is one of the file's. Every token is compared
    /// in constant time and none is skipped, so timing tells nothing about which matched.
    pub fn check(&self, presented: &[u8]) -> Option<String> {
        self.refresh();
        let state = self.lock();
        let mut found = None;
        for (label, token) in &state.tokens {
            if bool::from(token.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(label.clone());
            }
        }
        found
    }

    fn refresh(&self) {
        let stamp = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot stat the token file; keeping the tokens read before");
                return;
            }
        };
        if self.lock().stamp == Some(stamp) {
            return;
        }
        match load(&self.path, self.parse) {
            Ok((stamp, tokens)) => {
                let mut state = self.lock();
                state.stamp = Some(stamp);
                state.tokens = tokens;
                tracing::info!(path = %self.path.display(), labels = state.tokens.len(), "token file re-read");
            }
            Err(e) => {
                // Remember the bad stamp so the log says it once per change, not per request.
                self.lock().stamp = Some(stamp);
                warn!(error = %e, "token file rejected; keeping the tokens read before");
            }
        }
    }
}

fn stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}

fn load(path: &Path, parse: Parser) -> Result<((SystemTime, u64), Tokens), ConfigError> {
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let stamp = stamp(path).map_err(read)?;
    let text = std::fs::read_to_string(path).map_err(read)?;
    let tokens = parse(&text).map_err(|message| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })?;
    Ok((stamp, tokens))
}

/// Shorter tokens are guessable; agents read theirs from a file, so length costs nothing.
const MIN_TOKEN_LEN: usize = 16;

/// `label token` per line; blank lines and `#` comments are skipped.
pub fn parse_tokens(text: &str) -> Result<Tokens, String> {
    let mut out: Tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [label, token] = fields.as_slice() else {
            return Err(format!(
                "line {}: expected `label token` (two fields), found {}",
                n + 1,
                fields.len()
            ));
        };
        // Labels are printed (check-config), logged and shown on the pages.
        if label.contains(char::is_control) {
            return Err(format!(
                "line {}: the label {} holds control characters",
                n + 1,
                crate::model::shown(label)
            ));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "line {}: the token of {} is shorter than {MIN_TOKEN_LEN} characters",
                n + 1,
                crate::model::shown(label)
            ));
        }
        if out.iter().any(|(_, t)| t.as_slice() == token.as_bytes()) {
            return Err(format!("line {}: the same token appears twice", n + 1));
        }
        out.push((label.to_string(), token.as_bytes().to_vec()));
    }
    if out.is_empty() {
        return Err("no token (one `label token` per line)".into());
    }
    Ok(out)
}

/// The whole file, trimmed, is the token.
pub fn parse_read_token(text: &str) -> Result<Tokens, String> {
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the read token is shorter than {MIN_TOKEN_LEN} characters"
        ));
    }
    if token.contains(char::is_whitespace) {
        return Err("the read token contains white space".into());
    }
    Ok(vec![("read".into(), token.as_bytes().to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_refuses_bad_lines() {
        let t = parse_tokens(
            "# team tokens\nacct-1 aaaaaaaaaaaaaaaaaaaa\n\nteam-b bbbbbbbbbbbbbbbbbbbb\n",
        )
        .expect("valid");
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].0, "team-b");
        assert!(parse_tokens("only-one-field").is_err());
        assert!(
            parse_tokens("a short")
                .expect_err("short")
                .contains("shorter")
        );
        assert!(
            parse_tokens("a cccccccccccccccccc\nb cccccccccccccccccc")
                .expect_err("dup")
                .contains("twice")
        );
        assert!(parse_tokens("# nothing\n").is_err());
        let e = parse_tokens("te\x1b]0;x\x07am cccccccccccccccccc").expect_err("control");
        assert!(
            e.contains("te\\x1b]0;x\\x07am") && !e.contains('\x1b'),
            "{e}"
        );
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "one aaaaaaaaaaaaaaaaaaaa\n").expect("write");
        let f = SecretFile::open(path.clone(), parse_tokens).expect("open");
        assert_eq!(f.check(b"aaaaaaaaaaaaaaaaaaaa").as_deref(), Some("one"));
        assert_eq!(f.check(b"bbbbbbbbbbbbbbbbbbbb"), None);
        // A different size changes the stamp even within the mtime's resolution.
        std::fs::write(&path, "two bbbbbbbbbbbbbbbbbbbbbb\n").expect("write");
        assert_eq!(f.check(b"bbbbbbbbbbbbbbbbbbbbbb").as_deref(), Some("two"));
        assert_eq!(f.check(b"aaaaaaaaaaaaaaaaaaaa"), None);
        // A broken file keeps the last good tokens.
        std::fs::write(&path, "broken\n").expect("write");
        assert_eq!(f.check(b"bbbbbbbbbbbbbbbbbbbbbb").as_deref(), Some("two"));
    }
}
