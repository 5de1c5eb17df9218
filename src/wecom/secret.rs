//! A string that must never reach a log: the corp secret, and access tokens.

use std::fmt;

use serde::Deserialize;

/// Holds a secret. `Debug` prints a placeholder and there is no `Display`, so `{}`/`{:?}` in a
/// log line or an error message cannot leak it; the only way to the value is [`Secret::expose`],
/// which is easy to find in review.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it (a query string).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_redacts() {
        let secret = Secret::new("hunter2-corp-secret");
        let shown = format!("{secret:?} {:#?}", secret);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "hunter2-corp-secret");
    }
}
