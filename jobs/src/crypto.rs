//! Encryption at rest for provider secrets (access tokens, app secrets, API keys of LLMs).
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per value: nonces never repeat in practice, and
//! a tampered or foreign ciphertext fails to decrypt instead of yielding garbage. Stored as
//! `v1:` + base64(nonce ‖ ciphertext) so the format can change later.

use std::{fmt, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, OsRng},
};

use crate::error::{Error, Result};

const PREFIX: &str = "v1:";

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "WAFLOW_SECRET_KEY must be 32 random bytes in base64 (make one with `openssl rand -base64 32`)"
    )]
    Malformed,
    #[error("cannot read or create the secret key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl SecretBox {
    /// A key given as base64 of 32 bytes, as `WAFLOW_SECRET_KEY` carries it.
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| KeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// A fresh random key; for in-memory databases, whose secrets die with the process anyway.
    pub fn random() -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)),
        }
    }

    /// The embedded default: the key kept in `path` (created with a new random key, readable by
    /// the owner only, when missing). Losing this file makes stored secrets unreadable.
    pub fn from_key_file(path: &Path) -> Result<Self, KeyError> {
        let file_error = |source| KeyError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(contents) => Self::from_base64(&contents),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                write_private(path, &STANDARD.encode(key)).map_err(file_error)?;
                Ok(Self {
                    cipher: XChaCha20Poly1305::new(&key),
                })
            }
            Err(e) => Err(file_error(e)),
        }
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String> {
        let undecryptable = || {
            Error::Internal(
                "a stored secret cannot be decrypted: was WAFLOW_SECRET_KEY changed?".into(),
            )
        };
        let bytes = stored
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|bytes| bytes.len() > 24)
            .ok_or_else(undecryptable)?;
        let (nonce, ciphertext) = bytes.split_at(24);
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| undecryptable())?;
        String::from_utf8(plaintext).map_err(|_| undecryptable())
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// Compares a secret a caller presented with the stored one without leaking, through timing,
/// how much of it was right: only SHA-256 digests are compared.
pub fn secrets_match(stored: &str, presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(stored.as_bytes()) == Sha256::digest(presented.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_repeats_a_ciphertext() {
        let sbox = SecretBox::random();
        let a = sbox.encrypt("EAAG-token");
        let b = sbox.encrypt("EAAG-token");
        assert_ne!(a, b);
        assert!(!a.contains("EAAG"));
        assert_eq!(sbox.decrypt(&a).unwrap(), "EAAG-token");
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = SecretBox::random().encrypt("secret");
        assert!(SecretBox::random().decrypt(&stored).is_err());
        assert!(SecretBox::random().decrypt("v1:garbage").is_err());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("waflow-key-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let stored = SecretBox::from_key_file(&path).unwrap().encrypt("x");
        assert_eq!(
            SecretBox::from_key_file(&path)
                .unwrap()
                .decrypt(&stored)
                .unwrap(),
            "x"
        );
        assert!(SecretBox::from_base64("too-short").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
