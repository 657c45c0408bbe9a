//! The cluster token: a shared secret every worker connection and every non-loopback
//! control request presents (`Authorization: Bearer <token>`).
//!
//! It is read from a file (the charm writes it 0600 from a Juju secret), compared in constant
//! time, and never logged: [`Token`]'s `Debug` shows only its length.

use std::fmt;
use std::path::Path;
use subtle::ConstantTimeEq;

/// The cluster token.
#[derive(Clone)]
pub struct Token(String);

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "cannot read token file {path}: {source}; check the path and that this user may read it"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("token file {path} is empty or shorter than 16 characters; write a long random token into it")]
    TooShort { path: String },
}

impl Token {
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: shown.clone(),
            source,
        })?;
        let token = text.trim().to_string();
        if token.len() < 16 {
            return Err(TokenError::TooShort { path: shown });
        }
        Ok(Token(token))
    }

    /// For tests and in-process use.
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// A fresh random token (hex, 256 bits).
    pub fn generate() -> Token {
        Token(format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn matches_header(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        given.trim().as_bytes().ct_eq(self.0.as_bytes()).into()
    }

    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} chars)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_matches() {
        let t = Token::new("0123456789abcdef0123");
        assert!(t.matches_header(Some("Bearer 0123456789abcdef0123")));
        assert!(!t.matches_header(Some("Bearer 0123456789abcdef0124")));
        assert!(!t.matches_header(Some("0123456789abcdef0123")));
        assert!(!t.matches_header(None));
        assert!(!format!("{t:?}").contains("0123"));
    }

    #[test]
    fn short_or_missing_files_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "short\n").unwrap();
        assert!(Token::load(&p)
            .unwrap_err()
            .to_string()
            .contains("16 characters"));
        let e = Token::load(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read token file"));
    }
}
