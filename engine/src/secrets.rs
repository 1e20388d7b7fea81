//! Secrets at rest: AES-256-GCM under the master key (CONTRACT §2), a fresh nonce per value, and
//! as associated data the [`SecretScope`] — tenant, record kind and record id — so a ciphertext
//! copied into another record (of another tenant, or of the same one) does not decrypt.
//!
//! `enc:v2:` values are bound to their scope. `enc:v1:` values (bound to the tenant only) are
//! what earlier versions wrote; they are read only by the one-time re-encryption at start
//! (`Store::bind_secrets_to_records`) and by `rotate-master-key`, never by the running engine.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Marks a value sealed under its [`SecretScope`].
const PREFIX: &str = "enc:v2:";
/// Marks a value sealed under the tenant id alone (before record binding).
const LEGACY_PREFIX: &str = "enc:v1:";

/// Where a secret lives, bound into its ciphertext as associated data: a value decrypts only in
/// the record it was sealed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretScope {
    tenant: String,
    kind: &'static str,
    record: String,
}

impl SecretScope {
    /// The credentials document of an integration.
    pub fn integration(tenant: uuid::Uuid, integration: uuid::Uuid) -> Self {
        Self {
            tenant: tenant.to_string(),
            kind: "integration",
            record: integration.to_string(),
        }
    }

    /// A secret step parameter (a webhook's signing secret, …) of a workflow, in any version.
    pub fn workflow(tenant: uuid::Uuid, workflow: uuid::Uuid) -> Self {
        Self {
            tenant: tenant.to_string(),
            kind: "workflow",
            record: workflow.to_string(),
        }
    }

    /// A value of the `meta` table (the master key check); no tenant.
    pub fn meta(name: &str) -> Self {
        Self {
            tenant: String::new(),
            kind: "meta",
            record: name.to_owned(),
        }
    }

    /// The tenant the scope belongs to (empty for `meta`), which is what `enc:v1:` values were
    /// bound to (`"meta"` for the meta values).
    fn legacy_context(&self) -> &str {
        if self.kind == "meta" {
            "meta"
        } else {
            &self.tenant
        }
    }

    /// The associated data: fields separated by NUL, which none of them can contain, so no two
    /// scopes share one encoding.
    fn aad(&self) -> Vec<u8> {
        format!(
            "switchyard\0{}\0{}\0{}",
            self.tenant, self.kind, self.record
        )
        .into_bytes()
    }
}

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
            Ok(text) => {
                check_private(path).map_err(err)?;
                Self::from_base64(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = Self::generate_base64();
                write_private(path, &text).map_err(|e| err(e.to_string()))?;
                Self::from_base64(&text)
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// `enc:v2:` + base64(nonce ‖ ciphertext), bound to `scope`.
    pub fn encrypt(&self, plaintext: &str, scope: &SecretScope) -> String {
        format!("{PREFIX}{}", self.seal(plaintext, &scope.aad()))
    }

    /// The plain text of an `enc:v2:` value sealed for `scope`; anything else (another record's
    /// value, an `enc:v1:` value, another key) is refused.
    pub fn decrypt(&self, value: &str, scope: &SecretScope) -> Result<String, SecretError> {
        let body = value.strip_prefix(PREFIX).ok_or(SecretError::Decrypt)?;
        self.open(body, &scope.aad())
    }

    /// Like [`MasterKey::decrypt`], but also reads an `enc:v1:` value written before record
    /// binding for the same tenant: for re-encrypting old rows only.
    pub fn decrypt_any_scheme(
        &self,
        value: &str,
        scope: &SecretScope,
    ) -> Result<String, SecretError> {
        match value.strip_prefix(LEGACY_PREFIX) {
            Some(body) => self.open(body, scope.legacy_context().as_bytes()),
            None => self.decrypt(value, scope),
        }
    }

    /// Whether `value` was sealed before record binding.
    pub fn is_legacy(value: &str) -> bool {
        value.starts_with(LEGACY_PREFIX)
    }

    fn seal(&self, plaintext: &str, aad: &[u8]) -> String {
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
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    fn open(&self, body: &str, aad: &[u8]) -> Result<String, SecretError> {
        let bytes = STANDARD.decode(body).map_err(|_| SecretError::Decrypt)?;
        if bytes.len() < 12 + 16 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SecretError::Decrypt)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }

    /// A value sealed by this engine, under either scheme.
    pub fn is_encrypted(value: &str) -> bool {
        value.starts_with(PREFIX) || value.starts_with(LEGACY_PREFIX)
    }

    /// An `enc:v1:` value, as versions before record binding wrote it (tests of the migration).
    #[cfg(test)]
    pub(crate) fn encrypt_legacy(&self, plaintext: &str, context: &str) -> String {
        format!(
            "{LEGACY_PREFIX}{}",
            self.seal(plaintext, context.as_bytes())
        )
    }
}

/// Refuses a key file that group or others may read or write: whoever can read it reads every
/// secret in the database. The message says how to fix it.
fn check_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "is accessible to group or others (mode {:04o}); the master key must be readable \
                 by its owner only: run `chmod 600 {}`",
                mode & 0o7777,
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).expect("key")
    }

    #[test]
    fn round_trip_and_scope_binding() {
        let key = key();
        let (tenant_a, tenant_b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let workflow = uuid::Uuid::now_v7();
        let scope = SecretScope::workflow(tenant_a, workflow);
        let sealed = key.encrypt("whsec_abc", &scope);
        assert!(MasterKey::is_encrypted(&sealed));
        assert!(sealed.starts_with("enc:v2:"));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(key.decrypt(&sealed, &scope).expect("decrypts"), "whsec_abc");
        assert!(
            key.decrypt(&sealed, &SecretScope::workflow(tenant_b, workflow))
                .is_err()
        );
        assert!(self::key().decrypt(&sealed, &scope).is_err(), "another key");
        assert_ne!(
            key.encrypt("x", &scope),
            key.encrypt("x", &scope),
            "fresh nonce per value"
        );
    }

    #[test]
    fn ciphertexts_swapped_between_records_of_one_tenant_do_not_decrypt() {
        let key = key();
        let tenant = uuid::Uuid::now_v7();
        let (first, second) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        // Two integrations of one tenant: each one's credentials only in its own row.
        let a = key.encrypt(
            "{\"apiKey\":\"a\"}",
            &SecretScope::integration(tenant, first),
        );
        let b = key.encrypt(
            "{\"apiKey\":\"b\"}",
            &SecretScope::integration(tenant, second),
        );
        assert!(
            key.decrypt(&a, &SecretScope::integration(tenant, second))
                .is_err()
        );
        assert!(
            key.decrypt(&b, &SecretScope::integration(tenant, first))
                .is_err()
        );
        // Two workflows of the tenant, and a workflow secret moved into an integration's row
        // (same id text, other kind).
        let secret = key.encrypt("whsec_1", &SecretScope::workflow(tenant, first));
        assert!(
            key.decrypt(&secret, &SecretScope::workflow(tenant, second))
                .is_err()
        );
        assert!(
            key.decrypt(&secret, &SecretScope::integration(tenant, first))
                .is_err()
        );
        assert!(
            key.decrypt(&secret, &SecretScope::meta("master_key_check"))
                .is_err()
        );
    }

    #[test]
    fn legacy_values_are_read_only_by_the_migration_path() {
        let key = key();
        let tenant = uuid::Uuid::now_v7();
        let scope = SecretScope::integration(tenant, uuid::Uuid::now_v7());
        let old = key.encrypt_legacy("s3cret", &tenant.to_string());
        assert!(MasterKey::is_legacy(&old) && MasterKey::is_encrypted(&old));
        assert!(
            key.decrypt(&old, &scope).is_err(),
            "the engine reads v2 only"
        );
        assert_eq!(
            key.decrypt_any_scheme(&old, &scope).expect("legacy"),
            "s3cret"
        );
        let other_tenant = SecretScope::integration(uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert!(key.decrypt_any_scheme(&old, &other_tenant).is_err());
        let meta = key.encrypt_legacy("check", "meta");
        assert_eq!(
            key.decrypt_any_scheme(&meta, &SecretScope::meta("master_key_check"))
                .expect("meta"),
            "check"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sy-key-{}", uuid::Uuid::now_v7()));
        let path = dir.join("master.key");
        MasterKey::load_or_create(&path).expect("created");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        MasterKey::load_or_create(&path).expect("0600 is fine");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let message = MasterKey::load_or_create(&path)
            .expect_err("0644 is refused")
            .to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains("0644"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
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
