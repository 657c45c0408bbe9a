//! The cluster token: a shared secret every worker connection and every non-loopback
//! control request presents (`Authorization: Bearer <token>`).
//!
//! It is read from a file (the charm writes it 0600 from a Juju secret), compared in constant
//! time, and never logged: [`Token`]'s `Debug` shows only its length. [`Token::check`] is the
//! one credential check of every HTTP surface: the control API, the web UI and the hub.

use axum::http::{header, HeaderMap};
use base64::Engine as _;
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

/// Why [`Token::check`] refused a request; each surface words its answer from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all.
    #[error("no cluster token: send Authorization: Bearer <token>")]
    Missing,
    /// A header that does not carry this token (or is not text, or is another scheme).
    #[error("wrong cluster token")]
    Wrong,
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

    /// The one credential check of the control API, the web UI and the hub: the request's
    /// `Authorization` header carries this token, as `Bearer <token>` or as the password of
    /// HTTP Basic (any user name, so a browser can log in). Compared in constant time.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        match headers.get(header::AUTHORIZATION) {
            None => Err(AuthError::Missing),
            Some(value) => self.check_header(Some(value.to_str().map_err(|_| AuthError::Wrong)?)),
        }
    }

    /// [`Token::check`] on the header's value (`None`: no header).
    pub fn check_header(&self, header: Option<&str>) -> Result<(), AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let given: Vec<u8> = if let Some(bearer) = value.strip_prefix("Bearer ") {
            bearer.trim().as_bytes().to_vec()
        } else if let Some(basic) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .map_err(|_| AuthError::Wrong)?;
            let colon = decoded
                .iter()
                .position(|b| *b == b':')
                .ok_or(AuthError::Wrong)?;
            decoded[colon + 1..].to_vec()
        } else {
            return Err(AuthError::Wrong);
        };
        if bool::from(given.ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::Wrong)
        }
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
        assert!(t.check_header(Some("Bearer 0123456789abcdef0123")).is_ok());
        assert!(t.check_header(Some("Bearer 0123456789abcdef0124")).is_err());
        assert!(t.check_header(Some("0123456789abcdef0123")).is_err());
        assert!(t.check_header(None).is_err());
        assert!(!format!("{t:?}").contains("0123"));
    }

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    /// (Moved from the web UI, whose own check this was.)
    #[test]
    fn basic_password_or_bearer_must_be_the_token() {
        let t = Token::new("0123456789abcdef0123");
        let authorized = |t: &Token, h: Option<&str>| t.check_header(h).is_ok();
        assert!(authorized(
            &t,
            Some(&basic("admin", "0123456789abcdef0123"))
        ));
        assert!(authorized(&t, Some(&basic("", "0123456789abcdef0123"))));
        assert!(authorized(&t, Some("Bearer 0123456789abcdef0123")));
        assert!(!authorized(&t, Some(&basic("0123456789abcdef0123", "x"))));
        assert!(!authorized(
            &t,
            Some(&basic("admin", "0123456789abcdef0124"))
        ));
        assert!(!authorized(&t, Some("Basic !!!")));
        assert!(!authorized(&t, None));
        assert_eq!(t.check_header(None), Err(AuthError::Missing));
        let mut headers = HeaderMap::new();
        assert_eq!(t.check(&headers), Err(AuthError::Missing));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef0123".parse().unwrap(),
        );
        assert_eq!(t.check(&headers), Ok(()));
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
