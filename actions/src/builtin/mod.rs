//! The built-in actions and the one place they are registered.

mod delay;
pub mod email;
mod push;
mod push_tracking;
mod update_status;
mod webhook;

pub use delay::{DelayAction, parse_duration};
pub use email::{EmailAction, EmailConfig, SmtpSecurity, SmtpUrl};
pub use push::{PushAction, PushConfig};
pub use push_tracking::{PushTrackingAction, PushTrackingConfig};
pub use update_status::UpdateStatusAction;
pub use webhook::{Clock, WebhookAction, WebhookConfig};

use crate::ActionRegistry;

/// Operator settings the built-in actions need (CONTRACT §2), passed down from the engine's config.
#[derive(Debug, Clone)]
pub struct BuiltinSettings {
    /// Let webhooks and push reach loopback/private addresses (tests, development).
    pub allow_private_targets: bool,
    /// `smtp://`, `smtps://` or `smtp+plain://`; email steps fail clearly when unset.
    pub smtp_url: Option<String>,
    pub email_from: String,
    /// base64url raw P-256 private key; push steps fail clearly when unset.
    pub vapid_private_key: Option<String>,
    pub vapid_subject: String,
}

impl Default for BuiltinSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            smtp_url: None,
            email_from: "Switchyard <no-reply@localhost>".to_owned(),
            vapid_private_key: None,
            vapid_subject: "mailto:admin@localhost".to_owned(),
        }
    }
}

/// Why the built-ins could not be set up from the settings (a malformed SMTP URL or VAPID key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A registry holding every built-in action, configured from `settings`.
pub fn registry(_settings: &BuiltinSettings) -> Result<ActionRegistry, SetupError> {
    let mut registry = ActionRegistry::new();
    registry.register(UpdateStatusAction);
    registry.register(DelayAction);
    registry.register(WebhookAction::new(crate::http::GuardedClient::new(
        _settings.allow_private_targets,
    )?));
    registry.register(EmailAction::new(_settings)?);
    registry.register(PushAction::new(
        _settings,
        crate::http::GuardedClient::new(_settings.allow_private_targets)?,
    )?);
    registry.register(PushTrackingAction::new(crate::http::GuardedClient::new(
        _settings.allow_private_targets,
    )?));
    Ok(registry)
}
