//! Secrets at rest: AES-256-GCM under the master key (CONTRACT §2), a fresh nonce per value, the
//! tenant id as associated data so a ciphertext cannot be moved to another tenant.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Marks an encrypted value; the version allows a future scheme beside this one.
const PREFIX: &str = "enc:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key: {0}")]
    BadKey(String),
    #[error("a secret could not be decrypted with this master key")]
    Decrypt,
    #[error("master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// The master key, loaded once at start.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// From the base64 text of `--master-key` (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::BadKey(format!("not base64: {e}")))?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey(format!(
                "must be 32 bytes, got {}",
                bytes.len()
            )));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|e| SecretError::BadKey(e.to_string()))?;
        Ok(Self { cipher })
    }

    /// A new random key, as base64 text.
    pub fn generate_base64() -> String {
        let bytes: [u8; 32] = rand::random();
        STANDARD.encode(bytes)
    }

    /// Reads `path`, or creates it with a new key (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let err = |reason: String| SecretError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = Self::generate_base64();
                write_private(path, &text).map_err(|e| err(e.to_string()))?;
                Self::from_base64(&text)
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// `enc:v1:` + base64(nonce ‖ ciphertext).
    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        // Encryption with a valid key and nonce cannot fail for inputs this small; an empty
        // ciphertext would be refused on decrypt rather than leak anything.
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn decrypt(&self, value: &str, context: &str) -> Result<String, SecretError> {
        let body = value.strip_prefix(PREFIX).ok_or(SecretError::Decrypt)?;
        let bytes = STANDARD.decode(body).map_err(|_| SecretError::Decrypt)?;
        if bytes.len() < 12 + 16 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SecretError::Decrypt)?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }

    pub fn is_encrypted(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Where the generated master key lives for a SQLite URL: beside the database file. `None` for an
/// in-memory database.
pub fn key_file_for_sqlite(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") || database_url.contains("mode=memory") {
        return None;
    }
    let dir = Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Some(dir.join("master.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        let sealed = key.encrypt("whsec_abc", "tenant-a");
        assert!(MasterKey::is_encrypted(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            key.decrypt(&sealed, "tenant-a").expect("decrypts"),
            "whsec_abc"
        );
        assert!(key.decrypt(&sealed, "tenant-b").is_err());
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        assert!(other.decrypt(&sealed, "tenant-a").is_err());
        assert_ne!(
            key.encrypt("x", "t"),
            key.encrypt("x", "t"),
            "fresh nonce per value"
        );
    }

    #[test]
    fn key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_for_sqlite("sqlite://switchyard.db?mode=rwc"),
            Some(PathBuf::from("master.key"))
        );
        assert_eq!(
            key_file_for_sqlite("sqlite:///var/lib/sy/db.sqlite"),
            Some(PathBuf::from("/var/lib/sy/master.key"))
        );
        assert_eq!(key_file_for_sqlite("sqlite::memory:"), None);
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
