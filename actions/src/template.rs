//! MiniJinja templating of step parameters: every string parameter is a template over `entity`,
//! `event` and `workflow`, rendered per step.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::ValidationError;

/// Rendering work one string may do before it is stopped: templates are merchant input.
const FUEL: u64 = 50_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // A missing field renders as empty rather than failing the step: store payloads leave
    // optional fields out.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_recursion_limit(32);
    env
}

/// Checks that every string in `params` (nested ones included) parses as a template.
pub fn check_params(params: &Map<String, Value>) -> Result<(), ValidationError> {
    let env = environment();
    for (key, value) in params {
        check_value(&env, key, value)?;
    }
    Ok(())
}

fn check_value(env: &Environment<'_>, path: &str, value: &Value) -> Result<(), ValidationError> {
    match value {
        Value::String(s) if has_syntax(s) => env
            .template_from_str(s)
            .map(|_| ())
            .map_err(|e| ValidationError::field(path, format!("template does not parse: {e}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_value(env, &format!("{path}[{i}]"), v)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_value(env, &format!("{path}.{k}"), v)),
        _ => Ok(()),
    }
}

fn has_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Renders every string in `params` against `scope`; the first error is returned with its
/// parameter's name. Secrets listed in `skip` are passed through unrendered; parameters listed in
/// `html` are HTML, so the values pasted into them are escaped.
pub fn render_params(
    params: &Map<String, Value>,
    scope: &Value,
    skip: &[&str],
    html: &[&str],
) -> Result<Map<String, Value>, String> {
    let env = environment();
    let mut html_env = environment();
    html_env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    params
        .iter()
        .map(|(k, v)| {
            if skip.contains(&k.as_str()) {
                return Ok((k.clone(), v.clone()));
            }
            let env = if html.contains(&k.as_str()) {
                &html_env
            } else {
                &env
            };
            render_value(env, k, v, scope).map(|v| (k.clone(), v))
        })
        .collect()
}

fn render_value(
    env: &Environment<'_>,
    path: &str,
    value: &Value,
    scope: &Value,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if has_syntax(s) => {
            Value::String(render_str(env, s, scope).map_err(|e| format!("{path}: {e}"))?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_value(env, &format!("{path}[{i}]"), v, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    render_value(env, &format!("{path}.{k}"), v, scope).map(|v| (k.clone(), v))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Renders one template string.
pub fn render_str(env: &Environment<'_>, source: &str, scope: &Value) -> Result<String, String> {
    env.render_str(source, scope).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(detail) = e.detail()
            && !msg.contains(detail)
        {
            msg = format!("{msg}: {detail}");
        }
        msg
    })
}

/// Renders one template string with the standard sandboxed environment.
pub fn render(source: &str, scope: &Value) -> Result<String, String> {
    render_str(&environment(), source, scope)
}

/// Renders one template string as HTML: every value is HTML-escaped on output, so entity data
/// (a customer name, a product title) cannot inject markup. Same sandbox as [`render`].
pub fn render_html(source: &str, scope: &Value) -> Result<String, String> {
    let mut env = environment();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    render_str(&env, source, scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_strings_and_reports_the_parameter() {
        let params = json!({"subject": "Order {{ entity.id }}", "headers": {"X-N": "{{ event.trigger }}"}, "n": 3});
        let scope = json!({"entity": {"id": "ord_1"}, "event": {"trigger": "order_paid"}});
        let out = render_params(params.as_object().expect("an object"), &scope, &[], &[])
            .expect("should render");
        assert_eq!(out["subject"], "Order ord_1");
        assert_eq!(out["headers"]["X-N"], "order_paid");
        assert_eq!(out["n"], 3);

        let bad = json!({"subject": "{{ entity.id | nosuchfilter }}"});
        let err = render_params(bad.as_object().expect("an object"), &scope, &[], &[])
            .expect_err("should fail");
        assert!(err.starts_with("subject:"), "{err}");
    }

    #[test]
    fn unparsable_template_is_a_validation_error() {
        let bad = json!({"body": "Hello {{ entity.name "});
        let err = check_params(bad.as_object().expect("an object")).expect_err("should fail");
        assert_eq!(err.field.as_deref(), Some("body"));
    }

    #[test]
    fn runaway_template_is_stopped_by_fuel() {
        let scope = json!({});
        let err = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &scope,
        )
        .expect_err("should fail");
        assert!(err.to_lowercase().contains("fuel"), "{err}");
    }
}
