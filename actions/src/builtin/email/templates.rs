//! The built-in email templates (files under `actions/templates/email/`, compiled in) and the
//! composition of a step's subject, text and HTML from them and the step's own overrides.

use serde_json::{Value, json};

use super::config::EmailConfig;
use crate::template::{render, render_html};
use crate::{ActionError, StepContext};

/// One built-in template: MiniJinja sources over `entity`, `event` and `workflow`.
pub struct EmailTemplate {
    pub name: &'static str,
    pub subject: &'static str,
    pub text: &'static str,
    /// The HTML content, placed inside the shared layout.
    pub html: &'static str,
}

macro_rules! email_template {
    ($name:literal) => {
        EmailTemplate {
            name: $name,
            subject: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/email/",
                $name,
                ".subject.txt"
            )),
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/email/",
                $name,
                ".txt"
            )),
            html: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/email/",
                $name,
                ".html"
            )),
        }
    };
}

/// Every built-in template, in the order the docs list them.
pub static TEMPLATES: &[EmailTemplate] = &[
    email_template!("order_confirmation"),
    email_template!("shipping_confirmation"),
    email_template!("delivery_confirmation"),
    email_template!("order_cancelled"),
    email_template!("back_in_stock"),
];

/// The names of [`TEMPLATES`], for error messages and the catalog.
pub const NAMES: &[&str] = &[
    "order_confirmation",
    "shipping_confirmation",
    "delivery_confirmation",
    "order_cancelled",
    "back_in_stock",
];

/// `{% set %}`s shared by every template (order reference, formatted total, greeting), rendered
/// in front of each part so the copy itself stays short.
const PRELUDE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/email/_prelude.jinja"
));

/// The HTML page every template's HTML content is placed in; `content` is already escaped.
const LAYOUT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/email/_layout.html"
));

pub fn find(name: &str) -> Option<&'static EmailTemplate> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// What one email says.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Composes the email from the step's template and overrides. The step's own strings were
/// rendered by the engine already; only the built-in sources are rendered here.
pub fn compose(config: &EmailConfig, ctx: &StepContext) -> Result<Content, ActionError> {
    let subject_override = EmailConfig::part(&config.subject);
    let body_override = EmailConfig::part(&config.body);
    let html_override = EmailConfig::part(&config.html);
    let Some(name) = config.template.as_deref() else {
        // `check` guarantees subject and body without a template.
        return Ok(Content {
            subject: one_line(subject_override.unwrap_or_default()),
            text: body_override.unwrap_or_default().to_owned(),
            html: html_override.map(str::to_owned),
        });
    };
    let template = find(name)
        .ok_or_else(|| ActionError::permanent(format!("unknown email template `{name}`")))?;
    let scope = scope(ctx);
    let failed =
        |part: &str, e: String| ActionError::permanent(format!("template `{name}` {part}: {e}"));
    let subject = match subject_override {
        Some(s) => one_line(s),
        None => one_line(
            &render(
                &with_prelude(template.subject),
                &scope,
                &ctx.template_limits,
            )
            .map_err(|e| failed("subject", e))?,
        ),
    };
    let text = match body_override {
        Some(b) => b.to_owned(),
        None => render(&with_prelude(template.text), &scope, &ctx.template_limits)
            .map_err(|e| failed("body", e))?,
    };
    let html = match (html_override, body_override) {
        (Some(h), _) => Some(h.to_owned()),
        // A step that rewrites the text but keeps the template's HTML would say two different
        // things, and mail clients show the HTML: its text is then sent alone.
        (None, Some(_)) => None,
        (None, None) => {
            let content = render_html(&with_prelude(template.html), &scope, &ctx.template_limits)
                .map_err(|e| failed("html", e))?;
            let page = render_html(
                LAYOUT,
                &json!({"subject": subject, "content": content}),
                &ctx.template_limits,
            )
            .map_err(|e| failed("html layout", e))?;
            Some(page)
        }
    };
    Ok(Content {
        subject,
        text: text.trim().to_owned() + "\n",
        html,
    })
}

/// [`compose`] on a blocking thread: rendering the built-in sources over a tenant's entity is CPU
/// work (bounded by the template limits, like every render), kept off the async runtime's
/// threads as the engine keeps the step's own parameters.
pub(super) async fn compose_blocking(
    config: EmailConfig,
    ctx: &StepContext,
) -> Result<Content, ActionError> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || compose(&config, &ctx))
        .await
        .map_err(|e| ActionError::permanent(format!("rendering the email stopped: {e}")))?
}

/// The engine's template scope, with `entity.id` filled in from the step when the stored data
/// does not carry one, so templates can always name the order.
fn scope(ctx: &StepContext) -> Value {
    let mut entity = ctx.entity.clone();
    if let Value::Object(map) = &mut entity {
        map.entry("id")
            .or_insert_with(|| Value::String(ctx.entity_id.clone()));
    }
    json!({"entity": entity, "event": ctx.event, "workflow": ctx.workflow})
}

fn with_prelude(source: &str) -> String {
    format!("{PRELUDE}{source}")
}

/// A header is one line: a line break from data would end the Subject header early.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantView;
    use uuid::Uuid;

    fn ctx(entity_type: &str, entity: Value) -> StepContext {
        StepContext {
            step_id: Uuid::nil(),
            execution_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            attempt: 1,
            entity_type: entity_type.to_owned(),
            entity_id: "1042".to_owned(),
            entity,
            event: json!({"trigger": "order_paid"}),
            workflow: json!({"name": "Test"}),
            tenant: TenantView::default(),
            template_limits: Default::default(),
        }
    }

    fn config(template: &str) -> EmailConfig {
        serde_json::from_value(json!({"recipient": "customer", "template": template}))
            .expect("config")
    }

    #[test]
    fn names_match_the_templates() {
        let names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
        assert_eq!(names, NAMES);
    }

    #[test]
    fn every_template_renders_with_an_empty_entity() {
        for name in NAMES {
            let content = compose(&config(name), &ctx("Order", json!({}))).expect(name);
            assert!(!content.subject.is_empty(), "{name}");
            assert!(!content.subject.contains('\n'), "{name}");
            assert!(content.text.len() > 20, "{name}: {}", content.text);
            let html = content.html.expect(name);
            assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        }
    }

    #[test]
    fn order_confirmation_names_the_order_and_its_total() {
        let entity = json!({"total": 87.0, "currency": "USD",
                            "customer": {"email": "d@example.com", "firstName": "Dana"}});
        let content =
            compose(&config("order_confirmation"), &ctx("Order", entity)).expect("should succeed");
        assert!(content.subject.contains("1042"), "{}", content.subject);
        assert!(content.text.contains("Hi Dana,"), "{}", content.text);
        assert!(content.text.contains("87.00 USD"), "{}", content.text);
        assert!(content.html.expect("should succeed").contains("87.00 USD"));
    }

    #[test]
    fn shipping_confirmation_carries_tracking() {
        let entity = json!({"orderId": "1042", "trackingNumber": "1Z999AA10123456784",
                            "trackingCompany": "UPS",
                            "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784&x=1"});
        let content = compose(&config("shipping_confirmation"), &ctx("Shipment", entity))
            .expect("should succeed");
        assert!(
            content.text.contains("1Z999AA10123456784"),
            "{}",
            content.text
        );
        assert!(content.text.contains("UPS"), "{}", content.text);
        let html = content.html.expect("should succeed");
        // Escaped for the attribute; a mail client decodes it back to the store's URL.
        let href =
            "href=\"https:&#x2f;&#x2f;www.ups.com&#x2f;track?tracknum=1Z999AA10123456784&amp;x=1\"";
        assert!(html.contains(href), "{html}");

        // Only http(s) links become buttons.
        let entity = json!({"trackingUrl": "javascript:alert(1)"});
        let content = compose(&config("shipping_confirmation"), &ctx("Shipment", entity))
            .expect("should succeed");
        assert!(!content.html.expect("should succeed").contains("javascript"));
        assert!(!content.text.contains("javascript"));
    }

    #[test]
    fn entity_values_are_escaped_in_html_only() {
        let entity = json!({"title": "<script>alert(1)</script> Mug"});
        let content =
            compose(&config("back_in_stock"), &ctx("Product", entity)).expect("should succeed");
        let html = content.html.expect("should succeed");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(content.text.contains("<script>alert(1)</script> Mug"));
    }

    #[test]
    fn overrides_replace_parts_and_a_new_body_drops_the_template_html() {
        let cfg: EmailConfig = serde_json::from_value(json!({
            "recipient": "customer", "template": "order_confirmation",
            "subject": "Thanks!\r\nBcc: x@example.com", "body": "Custom text"}))
        .expect("should succeed");
        let content = compose(&cfg, &ctx("Order", json!({}))).expect("should succeed");
        assert_eq!(content.subject, "Thanks! Bcc: x@example.com");
        assert_eq!(content.text, "Custom text\n");
        assert_eq!(content.html, None);

        let cfg: EmailConfig = serde_json::from_value(json!({
            "recipient": "customer", "template": "order_confirmation", "subject": "Thanks!"}))
        .expect("should succeed");
        let content = compose(&cfg, &ctx("Order", json!({}))).expect("should succeed");
        assert_eq!(content.subject, "Thanks!");
        assert!(
            content
                .html
                .expect("should succeed")
                .contains("<title>Thanks!</title>")
        );
    }
}
