//! MiniJinja templating of step parameters: every string parameter is a template over `entity`,
//! `event` and `workflow`, rendered per step, within the limits of CONTRACT §7 (`--max-rendered-bytes`,
//! fuel, work): no template, however hostile, can allocate past them or run unbounded.
//!
//! How: the environment holds only the builtins of `builtins.rs`, each measured before and after it
//! runs; compiled templates are rewritten (`rewrite.rs`) so that every operator that allocates or
//! scans calls a guard first; every piece of text written goes through the formatter below, which
//! counts it; and the final text is checked against the cap.

mod budget;
mod builtins;
mod folding;
mod rewrite;

use std::sync::{Arc, Mutex};

use minijinja::machinery::{self, Vm};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::ValidationError;
pub use budget::{
    DEFAULT_MAX_RENDERED_BYTES, FUEL, MAX_WORK_BYTES, TemplateLimits, VALUE_BYTES, WRITE_FACTOR,
};

/// Macro calls and nested loops may go this deep (MiniJinja counts a macro call as 4 levels).
const RECURSION_LIMIT: usize = 32;

/// The sandboxed environment for these limits, built once per process and kind: registering the
/// builtins allocates every function and filter anew, which cost a worker about a tenth of its
/// CPU when it was done for every step (twice: plain and HTML). Renders clone it (a clone shares
/// the builtins) into one that lives as long as the template source.
fn environment(limits: TemplateLimits, html: bool) -> Arc<Environment<'static>> {
    type Cache = Mutex<Vec<(TemplateLimits, bool, Arc<Environment<'static>>)>>;
    static BUILT: Cache = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, env)) = built.iter().find(|(l, h, _)| *l == limits && *h == html) {
        return env.clone();
    }
    let env = Arc::new(build_environment(limits, html));
    // Limits come from the configuration: a process sees one or two. A bound all the same.
    if built.len() >= 16 {
        built.clear();
    }
    built.push((limits, html, env.clone()));
    env
}

fn build_environment(limits: TemplateLimits, html: bool) -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_fuel(Some(FUEL));
    // A missing field renders as empty rather than failing the step: store payloads leave
    // optional fields out.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_recursion_limit(RECURSION_LIMIT);
    if html {
        env.set_auto_escape_callback(|_| AutoEscape::Html);
    }
    builtins::register(&mut env, limits);
    env.set_formatter(move |out, state, value| {
        // Measured before it is turned into text (a map or list prints all it holds), then
        // counted once written: captures are written here too, so they count.
        let budget = budget::budget(state);
        limits.check("writing a value", budget::size(value, limits.cap() + 1))?;
        let mut text = String::new();
        minijinja::escape_formatter(&mut machinery::make_string_output(&mut text), state, value)?;
        budget.work(text.len())?;
        budget.write(text.len(), &limits)?;
        out.write_str(&text)
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write the output"))
    });
    env
}

/// Checks that every string in `params` (nested ones included) parses as a template and uses no
/// reserved name.
pub fn check_params(params: &Map<String, Value>) -> Result<(), ValidationError> {
    let env = environment(TemplateLimits::default(), false);
    for (key, value) in params {
        check_value(&env, key, value)?;
    }
    Ok(())
}

fn check_value<'s>(
    env: &'s Environment<'s>,
    path: &str,
    value: &'s Value,
) -> Result<(), ValidationError> {
    match value {
        Value::String(s) if has_syntax(s) => compile(env, s, &TemplateLimits::default())
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

/// A template compiled and bounded: its instructions, its blocks, how it escapes.
struct Bounded<'s> {
    instructions: machinery::Instructions<'s>,
    blocks: std::collections::BTreeMap<&'s str, machinery::Instructions<'s>>,
    auto_escape: AutoEscape,
}

fn compile<'s>(
    env: &'s Environment<'s>,
    source: &'s str,
    limits: &TemplateLimits,
) -> Result<Bounded<'s>, String> {
    // Before MiniJinja compiles it: compiling folds constant expressions.
    folding::check(source, limits).map_err(|e| describe(&e))?;
    let template = env.template_from_str(source).map_err(|e| describe(&e))?;
    let compiled = machinery::get_compiled_template(&template);
    Ok(Bounded {
        instructions: rewrite::bound(&compiled.instructions).map_err(|e| describe(&e))?,
        blocks: rewrite::bound_blocks(&compiled.blocks).map_err(|e| describe(&e))?,
        auto_escape: compiled.initial_auto_escape,
    })
}

/// Renders every string in `params` against `scope`; the first error is returned with its
/// parameter's name. Secrets listed in `skip` are passed through unrendered; parameters listed in
/// `html` are HTML, so the values pasted into them are escaped.
pub fn render_params(
    params: &Map<String, Value>,
    scope: &Value,
    skip: &[&str],
    html: &[&str],
    limits: &TemplateLimits,
) -> Result<Map<String, Value>, String> {
    let env = environment(*limits, false);
    let html_env = environment(*limits, true);
    // Converted once: every parameter shares the same (reference-counted) scope.
    let root = minijinja::Value::from_serialize(scope);
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
            render_value(env, limits, k, v, &root).map(|v| (k.clone(), v))
        })
        .collect()
}

fn render_value(
    env: &Environment<'_>,
    limits: &TemplateLimits,
    path: &str,
    value: &Value,
    root: &minijinja::Value,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if has_syntax(s) => {
            Value::String(render_bounded(env, limits, s, root).map_err(|e| format!("{path}: {e}"))?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_value(env, limits, &format!("{path}[{i}]"), v, root))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    render_value(env, limits, &format!("{path}.{k}"), v, root)
                        .map(|v| (k.clone(), v))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Renders one template string within the limits.
fn render_bounded<'s>(
    env: &'s Environment<'s>,
    limits: &TemplateLimits,
    source: &'s str,
    root: &minijinja::Value,
) -> Result<String, String> {
    let bounded = compile(env, source, limits)?;
    let mut text = String::new();
    {
        let mut out = machinery::make_string_output(&mut text);
        Vm::new(env)
            .eval(
                &bounded.instructions,
                root.clone(),
                &bounded.blocks,
                &mut out,
                bounded.auto_escape,
            )
            .map_err(|e| describe(&e))?;
    }
    limits
        .check("the rendered text", text.len())
        .map_err(|e| describe(&e))?;
    Ok(text)
}

/// An error as the step's attempt reports it: what failed, where, and which limit.
fn describe(e: &Error) -> String {
    if e.kind() == ErrorKind::OutOfFuel {
        let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
        return format!(
            "the template ran out of fuel{line}: one render may execute at most {FUEL} instructions"
        );
    }
    let mut msg = e.to_string();
    if let Some(detail) = e.detail()
        && !msg.contains(detail)
    {
        msg = format!("{msg}: {detail}");
    }
    msg
}

/// Renders one template string with the standard sandboxed environment.
pub fn render(source: &str, scope: &Value, limits: &TemplateLimits) -> Result<String, String> {
    let env = environment(*limits, false);
    render_bounded(
        &env,
        limits,
        source,
        &minijinja::Value::from_serialize(scope),
    )
}

/// Renders one template string as HTML: every value is HTML-escaped on output, so entity data
/// (a customer name, a product title) cannot inject markup. Same sandbox as [`render`].
pub fn render_html(source: &str, scope: &Value, limits: &TemplateLimits) -> Result<String, String> {
    let env = environment(*limits, true);
    render_bounded(
        &env,
        limits,
        source,
        &minijinja::Value::from_serialize(scope),
    )
}

#[cfg(test)]
mod tests;
