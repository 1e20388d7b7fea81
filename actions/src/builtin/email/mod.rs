//! `send_email`: an email over SMTP (lettre, pooled) to the entity's customer, the merchant or an
//! address, from a built-in template or the step's own subject and body.
//!
//! The `Message-ID` is `<step id@From domain>`, the same on every attempt of a step, so a
//! receiving MTA or ticket system can drop the duplicate an at-least-once retry may produce.

mod config;
mod smtp;
mod templates;

pub use config::{EmailConfig, Recipient};
pub use smtp::{SmtpSecurity, SmtpUrl};
pub use templates::{Content, EmailTemplate, NAMES as TEMPLATE_NAMES, TEMPLATES, compose};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncTransport, Message};
use serde_json::json;

use super::{BuiltinSettings, SetupError};
use crate::{Action, ActionError, Outcome, StepContext, ValidationError};

use smtp::Mailer;

/// The step failure when the operator gave no `--smtp-url`: workflows with email steps still
/// validate and save, and their executions pause with this reason until email is configured.
pub const NOT_CONFIGURED: &str = "email is not configured: set --smtp-url / SMTP_URL";

/// Sends one email per step through the operator's SMTP server.
pub struct EmailAction {
    from: Mailbox,
    /// `None` when no SMTP URL is configured.
    mailer: Option<Mailer>,
}

impl std::fmt::Debug for EmailAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailAction")
            .field("from", &self.from.to_string())
            .field("configured", &self.mailer.is_some())
            .finish()
    }
}

impl EmailAction {
    /// Checks `--email-from` and `--smtp-url` and prepares the transport (built on first send,
    /// then pooled). A malformed value is a start-up error.
    pub fn new(settings: &BuiltinSettings) -> Result<Self, SetupError> {
        let from = settings.email_from.trim().parse::<Mailbox>().map_err(|e| {
            SetupError(format!(
                "--email-from / SWITCHYARD_EMAIL_FROM `{}` is not a valid address ({e}): \
                 expected `Name <address@domain>` or `address@domain`",
                settings.email_from
            ))
        })?;
        let mailer = match settings.smtp_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let url = SmtpUrl::parse(text)
                    .map_err(|e| SetupError(format!("--smtp-url / SMTP_URL is not usable: {e}")))?;
                let builder = url
                    .transport_builder()
                    .map_err(|e| SetupError(format!("--smtp-url / SMTP_URL is not usable: {e}")))?;
                Some(Mailer::new(builder))
            }
        };
        Ok(Self { from, mailer })
    }

    /// Whether an SMTP server is configured.
    pub fn is_configured(&self) -> bool {
        self.mailer.is_some()
    }

    /// The `Message-ID` every attempt of the step carries.
    fn message_id(&self, ctx: &StepContext) -> String {
        format!("<{}@{}>", ctx.step_id, self.from.email.domain())
    }

    fn message(&self, to: Mailbox, content: Content, ctx: &StepContext) -> Result<Message, String> {
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(content.subject)
            .message_id(Some(self.message_id(ctx)))
            .date_now()
            // RFC 3834: out-of-office responders and ticket systems must not answer automated
            // notifications, or a reply could loop back into a workflow.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        match content.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(content.text, html)),
            None => builder.header(ContentType::TEXT_PLAIN).body(content.text),
        }
        .map_err(|e| format!("the email cannot be built: {e}"))
    }
}

impl Action for EmailAction {
    type Config = EmailConfig;

    fn kind(&self) -> &'static str {
        "send_email"
    }

    fn description(&self) -> &'static str {
        "Send an email over SMTP to the customer, the merchant or an address, from a built-in \
         template or your own subject and body"
    }

    fn html_params(&self) -> &'static [&'static str] {
        &["html"]
    }

    fn validate(&self, config: &Self::Config) -> Result<(), ValidationError> {
        config.check()
    }

    async fn execute(
        &self,
        config: Self::Config,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let mailer = self
            .mailer
            .as_ref()
            .ok_or_else(|| ActionError::permanent(NOT_CONFIGURED))?;
        let to = config.resolve_recipient(ctx)?;
        let content = templates::compose_blocking(config, ctx).await?;
        let message_id = self.message_id(ctx);
        let message = self
            .message(to.clone(), content, ctx)
            .map_err(ActionError::permanent)?;
        let response = mailer
            .transport()
            .send(message)
            .await
            .map_err(smtp::classify)?;
        let reply = format!(
            "{} {}",
            response.code(),
            response.first_line().unwrap_or_default()
        );
        let address = to.email.to_string();
        Ok(Outcome {
            summary: format!("sent to {address}"),
            output: json!({"to": address, "messageId": message_id, "smtp": reply.trim_end()}),
            effects: Vec::new(),
        })
    }
}
