//! `send_email` parameters: who receives the email and where its subject and bodies come from,
//! checked without I/O.

use lettre::message::Mailbox;
use serde::Deserialize;
use serde_json::Value;

use super::templates;
use crate::{ActionError, StepContext, ValidationError};

/// A `send_email` step's parameters. Strings arrive already rendered by the engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `customer`, `merchant`, or an address (`Ana <ana@example.com>`, or a template rendering one).
    pub recipient: String,
    /// A built-in template; `subject`, `body` and `html` given alongside it override its parts.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    /// The plain-text part, always sent.
    #[serde(default)]
    pub body: Option<String>,
    /// An optional HTML part, sent with the text as multipart/alternative.
    #[serde(default)]
    pub html: Option<String>,
}

/// Who `recipient` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// The entity's customer: `customer.email`, or `email` on a Customer entity.
    Customer,
    /// The tenant's notification address.
    Merchant,
    Address(&'a str),
}

impl EmailConfig {
    pub fn recipient(&self) -> Recipient<'_> {
        let text = self.recipient.trim();
        if text.eq_ignore_ascii_case("customer") {
            Recipient::Customer
        } else if text.eq_ignore_ascii_case("merchant") {
            Recipient::Merchant
        } else {
            Recipient::Address(text)
        }
    }

    /// An override given alongside a template; a blank one (a variable that rendered empty)
    /// leaves the template's part in place rather than sending an empty subject.
    pub(super) fn part(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|s| !s.trim().is_empty())
    }

    pub(super) fn check(&self) -> Result<(), ValidationError> {
        match self.recipient() {
            Recipient::Address("") => {
                return Err(ValidationError::field(
                    "recipient",
                    "must not be empty: `customer`, `merchant` or an email address",
                ));
            }
            // A template (`{{ entity.contact }}`) is checked once rendered, when the step runs:
            // the registry validates the rendered parameters again.
            Recipient::Address(text) if !has_template_syntax(text) => {
                parse_address(text).map_err(|e| ValidationError::field("recipient", e))?;
            }
            _ => {}
        }
        match self.template.as_deref() {
            Some(name) => {
                if templates::find(name).is_none() {
                    return Err(ValidationError::field(
                        "template",
                        format!(
                            "unknown template `{}`: expected one of {}",
                            name.chars().take(64).collect::<String>(),
                            templates::NAMES.join(", ")
                        ),
                    ));
                }
            }
            None => {
                for (field, value) in [("subject", &self.subject), ("body", &self.body)] {
                    match value.as_deref().map(str::trim) {
                        None => {
                            return Err(ValidationError::field(
                                field,
                                "required unless `template` names a built-in template",
                            ));
                        }
                        Some("") => return Err(ValidationError::field(field, "must not be empty")),
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The mailbox this step sends to, from the entity or the tenant when `recipient` names one.
    pub(super) fn resolve_recipient(&self, ctx: &StepContext) -> Result<Mailbox, ActionError> {
        match self.recipient() {
            Recipient::Address(text) => {
                parse_address(text).map_err(|e| ActionError::permanent(format!("recipient: {e}")))
            }
            Recipient::Merchant => {
                let address = ctx
                    .tenant
                    .notification_email
                    .as_deref()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        ActionError::permanent(
                            "recipient is `merchant` but the tenant has no notification email \
                             address configured",
                        )
                    })?;
                parse_address(address).map_err(|e| {
                    ActionError::permanent(format!("the tenant's notification address: {e}"))
                })
            }
            Recipient::Customer => {
                let (path, value) = if ctx.entity_type.eq_ignore_ascii_case("Customer") {
                    ("email", ctx.entity.get("email"))
                } else {
                    (
                        "customer.email",
                        ctx.entity.get("customer").and_then(|c| c.get("email")),
                    )
                };
                let address = value
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        ActionError::permanent(format!("the entity has no customer email ({path})"))
                    })?;
                parse_address(address).map_err(|e| {
                    ActionError::permanent(format!("the entity's customer email ({path}): {e}"))
                })
            }
        }
    }
}

fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Parses `ana@example.com` or `Ana <ana@example.com>`; the message quotes (a bounded slice of)
/// the input so a merchant can see what their template produced.
pub(super) fn parse_address(text: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>().map_err(|e| {
        let shown: String = text.chars().take(120).collect();
        format!("`{shown}` is not a valid email address ({e})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> Result<EmailConfig, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    fn check(value: Value) -> Result<(), String> {
        config(value)?.check().map_err(|e| e.message)
    }

    #[test]
    fn a_template_or_subject_and_body_is_enough() {
        assert_eq!(
            check(json!({"recipient": "customer", "template": "order_confirmation"})),
            Ok(())
        );
        assert_eq!(
            check(json!({"recipient": "merchant", "subject": "New order", "body": "See admin"})),
            Ok(())
        );
        assert_eq!(
            check(
                json!({"recipient": "Ana <ana@example.com>", "template": "back_in_stock",
                         "subject": "It is back", "html": "<p>Back</p>"})
            ),
            Ok(())
        );
        assert_eq!(
            check(json!({"recipient": "{{ entity.contact }}", "subject": "s", "body": "b"})),
            Ok(())
        );
    }

    #[test]
    fn incomplete_or_unknown_content_is_refused() {
        let err =
            check(json!({"recipient": "customer", "subject": "Hi"})).expect_err("should fail");
        assert!(err.starts_with("body: required"), "{err}");
        let err = check(json!({"recipient": "customer", "body": "Hi", "html": "<p>Hi</p>"}))
            .expect_err("should fail");
        assert!(err.starts_with("subject: required"), "{err}");
        let err = check(json!({"recipient": "customer", "subject": " ", "body": "b"}))
            .expect_err("should fail");
        assert_eq!(err, "subject: must not be empty");
        let err = check(json!({"recipient": "customer", "template": "welcome"}))
            .expect_err("should fail");
        assert!(err.contains("unknown template `welcome`"), "{err}");
        for name in templates::NAMES {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn recipients_are_checked_when_literal() {
        let err = check(json!({"recipient": " ", "template": "order_confirmation"}))
            .expect_err("should fail");
        assert!(err.starts_with("recipient: must not be empty"), "{err}");
        let err = check(json!({"recipient": "ana at example", "template": "order_confirmation"}))
            .expect_err("should fail");
        assert!(
            err.contains("`ana at example` is not a valid email address"),
            "{err}"
        );
        assert_eq!(
            check(json!({"recipient": "Merchant", "template": "order_cancelled"})),
            Ok(())
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = config(
            json!({"recipient": "customer", "template": "order_confirmation",
                                "cc": "x@example.com"}),
        )
        .expect_err("should fail");
        assert!(err.contains("unknown field `cc`"), "{err}");
    }
}
