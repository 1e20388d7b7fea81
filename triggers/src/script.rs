//! The `condition` script: a Rhai expression over `entity`, `event` and `tenant`, compiled once
//! when a workflow is saved and evaluated in a sandbox for every matching event.
//!
//! Scripts come from tenants, so the sandbox assumes hostile input: bounded operations, call
//! depth, expression depth and data sizes, a wall-clock deadline per evaluation, no `eval`, no
//! modules, no `sleep`, output discarded, and a panic inside Rhai caught rather than taking a
//! worker down.

use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Position, Scope};
use serde_json::Value;
use thiserror::Error;

/// Longer sources are refused before parsing: a condition is an expression, not a program.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;

/// The deadline is read every this many operations: `Instant::now()` costs about as much as a
/// cheap operation, and the operations limit bounds what can happen in between.
const DEADLINE_CHECK_EVERY: u64 = 16;

/// The names a condition sees. Declared at compile time so that strict variables turn a typo
/// (`entiy.total`) into a save-time error.
const INPUT_NAMES: [&str; 3] = ["entity", "event", "tenant"];

/// Bounds on one evaluation.
///
/// The size limits apply to values the script builds or passes to a function, and that includes
/// the input: with the defaults, `entity.items.len()` fails on an order with more than 10,000
/// line items, while `entity.items[0]` still works. The API's body size limit keeps real inputs
/// well below these bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub timeout: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 100_000,
            max_call_levels: 16,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            timeout: Duration::from_millis(50),
        }
    }
}

/// A condition that did not compile, with where Rhai saw the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct CompileError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rhai: {}", self.message)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " (line {line}, position {column})"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

impl CompileError {
    fn plain(message: impl Into<String>) -> Self {
        CompileError {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// Which sandbox bound an evaluation ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptLimit {
    Operations(u64),
    Timeout(Duration),
    CallLevels(usize),
    StringSize(usize),
    ArraySize(usize),
    MapSize(usize),
}

impl fmt::Display for ScriptLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptLimit::Operations(max) => write!(f, "too many operations (limit {max})"),
            ScriptLimit::Timeout(after) => write!(f, "timed out after {}ms", after.as_millis()),
            ScriptLimit::CallLevels(max) => {
                write!(f, "function calls nested too deeply (limit {max} levels)")
            }
            ScriptLimit::StringSize(max) => write!(f, "string too large (limit {max} bytes)"),
            ScriptLimit::ArraySize(max) => write!(f, "array too large (limit {max} items)"),
            ScriptLimit::MapSize(max) => write!(f, "object map too large (limit {max} entries)"),
        }
    }
}

/// Why a condition could not give an answer. Any of these means "the event does not match".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    #[error("condition exceeded a sandbox limit: {0}")]
    Limit(ScriptLimit),
    #[error("condition must return a bool, got {0}")]
    NotBool(String),
    /// `message` is Rhai's, position included.
    #[error("condition failed: {message}")]
    Runtime {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    #[error("the script engine failed unexpectedly")]
    Panicked,
}

/// A compiled condition: cheap to clone and shareable across threads, so the engine can cache
/// one per workflow version.
#[derive(Clone)]
pub struct CompiledCondition {
    ast: Arc<AST>,
    source: Arc<str>,
}

impl CompiledCondition {
    /// The script as the workflow holds it.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for CompiledCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledCondition")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What a condition sees, as JSON: the entity's data, the event (`trigger`, `occurredAt`,
/// `previous`, …) and the tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalInput {
    pub entity: Value,
    pub event: Value,
    pub tenant: Value,
}

impl EvalInput {
    /// Converts the input to Rhai values once, for evaluating many workflows' conditions against
    /// the same event: the conversion costs more than a typical condition.
    pub fn prepare(&self) -> PreparedInput {
        PreparedInput {
            values: [
                json_to_dynamic(&self.entity),
                json_to_dynamic(&self.event),
                json_to_dynamic(&self.tenant),
            ],
        }
    }
}

/// JSON to Rhai, by hand: `rhai::serde::to_dynamic` goes through serde's data model and took
/// 5.5 µs for the benchmark's order against 3.3 µs here, while the condition itself takes under
/// 1 µs. Same mapping: null is `()`, integers that fit are `i64`, other numbers
/// `f64` (so a `u64` above `i64::MAX` becomes a float, as with `to_dynamic`).
fn json_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => ImmutableString::from(s.as_str()).into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        Value::Object(map) => {
            // Inserting one by one beats `collect()`, which sorts a temporary vector first:
            // entity objects are small and their keys mostly already ordered.
            let mut out = rhai::Map::new();
            for (k, v) in map {
                out.insert(k.as_str().into(), json_to_dynamic(v));
            }
            Dynamic::from_map(out)
        }
    }
}

/// An [`EvalInput`] converted to Rhai values; see [`EvalInput::prepare`].
#[derive(Debug, Clone)]
pub struct PreparedInput {
    /// In the order of [`INPUT_NAMES`].
    values: [Dynamic; 3],
}

thread_local! {
    /// The deadline of the evaluation running on this thread. Rhai's progress callback is one
    /// closure per engine and gets only the operation count, while evaluations run concurrently
    /// on many threads; an evaluation is synchronous, so its thread identifies it.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets this thread's deadline for the lifetime of one evaluation, restoring the previous one
/// afterwards (also on unwind).
struct DeadlineGuard {
    previous: Option<Instant>,
}

impl DeadlineGuard {
    fn set(deadline: Instant) -> Self {
        DeadlineGuard {
            previous: DEADLINE.replace(Some(deadline)),
        }
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.set(self.previous);
    }
}

/// The sandboxed Rhai engine. Build one per process and share it.
pub struct ConditionEngine {
    engine: Engine,
    limits: ScriptLimits,
}

impl fmt::Debug for ConditionEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionEngine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for ConditionEngine {
    fn default() -> Self {
        ConditionEngine::new(ScriptLimits::default())
    }
}

impl ConditionEngine {
    pub fn new(limits: ScriptLimits) -> Self {
        // `new_raw` starts with no functions at all; the packages below are the pure ones. Left
        // out on purpose: LanguageCorePackage (`sleep` would block a worker thread, `take` could
        // empty a value), BasicTimePackage (conditions should not depend on the wall clock;
        // `event.occurredAt` is there for that) and BLOBs.
        let mut engine = Engine::new_raw();
        ArithmeticPackage::new().register_into_engine(&mut engine);
        LogicPackage::new().register_into_engine(&mut engine);
        BasicStringPackage::new().register_into_engine(&mut engine);
        MoreStringPackage::new().register_into_engine(&mut engine);
        BasicIteratorPackage::new().register_into_engine(&mut engine);
        BasicFnPackage::new().register_into_engine(&mut engine);
        BasicMathPackage::new().register_into_engine(&mut engine);
        BasicArrayPackage::new().register_into_engine(&mut engine);
        BasicMapPackage::new().register_into_engine(&mut engine);

        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_strict_variables(true)
            .on_print(|_| {})
            .on_debug(|_, _, _| {})
            .on_progress(|ops| {
                if ops % DEADLINE_CHECK_EVERY != 0 {
                    return None;
                }
                let deadline = DEADLINE.get()?;
                // The token is irrelevant: only this callback terminates scripts.
                (Instant::now() >= deadline).then_some(Dynamic::UNIT)
            });
        // `eval` would compile a string at run time, around every compile-time check.
        engine.disable_symbol("eval");

        ConditionEngine { engine, limits }
    }

    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// Compiles a condition at save time. Unknown variables are errors here, not at run time.
    pub fn compile(&self, source: &str) -> Result<CompiledCondition, CompileError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(CompileError::plain(format!(
                "condition is {} bytes long, at most {MAX_SOURCE_BYTES} allowed",
                source.len()
            )));
        }
        if source.trim().is_empty() {
            return Err(CompileError::plain("condition is empty"));
        }
        // Plain variables, not constants: the optimizer would otherwise fold the placeholder
        // `()` into the script.
        let mut scope = Scope::new();
        for name in INPUT_NAMES {
            scope.push_dynamic(name, Dynamic::UNIT);
        }
        let ast = self
            .engine
            .compile_with_scope(&scope, source)
            .map_err(|err| {
                let (line, column) = position(err.position());
                CompileError {
                    message: err.err_type().to_string(),
                    line,
                    column,
                }
            })?;
        Ok(CompiledCondition {
            ast: Arc::new(ast),
            source: source.into(),
        })
    }

    /// Evaluates `cond` over `input`. Converts the input on every call; to test many conditions
    /// against one event, [`EvalInput::prepare`] once and use [`Self::evaluate_prepared`].
    pub fn evaluate(&self, cond: &CompiledCondition, input: &EvalInput) -> Result<bool, EvalError> {
        // Straight into the scope: the values are fresh, so no copy is needed.
        self.run(cond, input.prepare().values, None)
    }

    /// Evaluates `cond` over an already converted input.
    pub fn evaluate_prepared(
        &self,
        cond: &CompiledCondition,
        input: &PreparedInput,
    ) -> Result<bool, EvalError> {
        // Each evaluation gets its own copy, so no script can affect the next one (a closure
        // capturing `entity`, for one, turns the scope's value into a shared one).
        self.run(cond, input.values.clone(), None)
    }

    /// [`Self::evaluate_prepared`] that also stops at `deadline` (the rest of an event's matching
    /// budget), whichever of it and the per-evaluation timeout comes first. Running into
    /// `deadline` reports [`ScriptLimit::Timeout`] with the time this evaluation was given.
    pub fn evaluate_prepared_until(
        &self,
        cond: &CompiledCondition,
        input: &PreparedInput,
        deadline: Instant,
    ) -> Result<bool, EvalError> {
        self.run(cond, input.values.clone(), Some(deadline))
    }

    fn run(
        &self,
        cond: &CompiledCondition,
        values: [Dynamic; 3],
        budget: Option<Instant>,
    ) -> Result<bool, EvalError> {
        // Constants, so `entity.total = 0` is an error rather than a silent no-op.
        let mut scope = Scope::with_capacity(INPUT_NAMES.len());
        for (name, value) in INPUT_NAMES.into_iter().zip(values) {
            scope.push_constant_dynamic(name, value);
        }

        let started = Instant::now();
        let deadline = match budget {
            Some(budget) => budget.min(started + self.limits.timeout),
            None => started + self.limits.timeout,
        };
        let _deadline = DeadlineGuard::set(deadline);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &cond.ast)
        }));
        let value = match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(err)) => {
                return Err(self.eval_error(&err, deadline.saturating_duration_since(started)));
            }
            Err(_) => return Err(EvalError::Panicked),
        };
        value.as_bool().map_err(|type_name| {
            EvalError::NotBool(self.engine.map_type_name(type_name).to_owned())
        })
    }

    /// `allowed`: the time this evaluation was given (the timeout, or less of a spent budget).
    fn eval_error(&self, err: &EvalAltResult, allowed: Duration) -> EvalError {
        // Errors inside script-defined functions arrive wrapped once per call level; the limit
        // that was hit is at the bottom.
        let inner = err.unwrap_inner();
        let limit = match inner {
            EvalAltResult::ErrorTooManyOperations(_) => {
                Some(ScriptLimit::Operations(self.limits.max_operations))
            }
            EvalAltResult::ErrorTerminated(..) => Some(ScriptLimit::Timeout(allowed)),
            EvalAltResult::ErrorStackOverflow(_) => {
                Some(ScriptLimit::CallLevels(self.limits.max_call_levels))
            }
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                Some(if what.starts_with("Length of string") {
                    ScriptLimit::StringSize(self.limits.max_string_size)
                } else if what.starts_with("Size of array") {
                    ScriptLimit::ArraySize(self.limits.max_array_size)
                } else {
                    ScriptLimit::MapSize(self.limits.max_map_size)
                })
            }
            _ => None,
        };
        if let Some(limit) = limit {
            return EvalError::Limit(limit);
        }
        let (line, column) = position(inner.position());
        EvalError::Runtime {
            message: inner.to_string(),
            line,
            column,
        }
    }
}

fn position(pos: Position) -> (Option<usize>, Option<usize>) {
    (pos.line(), pos.position())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engine() -> ConditionEngine {
        ConditionEngine::default()
    }

    fn run(source: &str, input: &EvalInput) -> Result<bool, EvalError> {
        let engine = engine();
        let cond = engine.compile(source).expect("compiles");
        engine.evaluate(&cond, input)
    }

    fn order(total: f64, country: &str) -> EvalInput {
        EvalInput {
            entity: json!({"total": total, "status": "paid", "customer": {"country": country}}),
            event: json!({"trigger": "order_paid", "previous": {"status": "pending"}}),
            tenant: json!({"id": "t1"}),
        }
    }

    #[test]
    fn engine_and_conditions_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ConditionEngine>();
        assert_send_sync::<CompiledCondition>();
        assert_send_sync::<PreparedInput>();
    }

    #[test]
    fn evaluates_over_json_input() {
        let src = r#"entity.total > 100 && entity.customer.country == "DE""#;
        assert_eq!(run(src, &order(120.5, "DE")), Ok(true));
        assert_eq!(run(src, &order(99.0, "DE")), Ok(false));
        assert_eq!(run(src, &order(120.5, "AT")), Ok(false));
        let src = r#"event.previous.status != "paid" && tenant.id == "t1""#;
        assert_eq!(run(src, &order(1.0, "DE")), Ok(true));
    }

    #[test]
    fn json_converts_like_rhai_serde() {
        let value = json!({
            "n": null, "b": true, "i": -3, "f": 1.5, "big": u64::MAX, "s": "x",
            "a": [1, "two", {"k": []}], "o": {"nested": {"deep": 1}}
        });
        let ours = json_to_dynamic(&value);
        let theirs = rhai::serde::to_dynamic(&value).expect("converts");
        assert_eq!(ours.to_string(), theirs.to_string());
        let map = ours.try_cast::<rhai::Map>().expect("a map");
        assert!(map["n"].is_unit());
        assert_eq!(map["i"].as_int(), Ok(-3));
        assert_eq!(map["big"].as_float(), Ok(u64::MAX as f64));
    }

    #[test]
    fn integers_and_floats_compare() {
        let input = EvalInput {
            entity: json!({"qty": 3, "total": 100}),
            ..EvalInput::default()
        };
        assert_eq!(
            run("entity.qty > 2.5 && entity.total == 100.0", &input),
            Ok(true)
        );
    }

    #[test]
    fn missing_properties_are_unit_and_comparisons_do_not_fail() {
        let input = order(120.0, "DE");
        assert_eq!(run("entity.nope == ()", &input), Ok(true));
        assert_eq!(run(r#"entity.nope == "x""#, &input), Ok(false));
        // One level only: a property of `()` is an error, not `()` again.
        let err = run("entity.nope.deeper == ()", &input).expect_err("property of unit");
        assert!(
            matches!(&err, EvalError::Runtime { line: Some(1), .. }),
            "{err}"
        );
        // Ordering a unit against a number is not an error in Rhai, just false.
        assert_eq!(run("entity.nope > 100", &input), Ok(false));
    }

    #[test]
    fn compile_error_has_line_and_position() {
        let err = engine()
            .compile("entity.total > 1 &&\n  foo == 2")
            .expect_err("unknown variable");
        assert_eq!(err.line, Some(2));
        assert_eq!(err.column, Some(3));
        assert!(err.message.contains("foo"), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with("Rhai: "), "{shown}");
        assert!(shown.ends_with("(line 2, position 3)"), "{shown}");

        let err = engine().compile("entity.total >").expect_err("syntax");
        assert!(err.line.is_some());
    }

    #[test]
    fn long_and_empty_sources_are_refused() {
        let long = format!("true || {}", "1 == 1 || ".repeat(2000));
        let err = engine().compile(&long).expect_err("too long");
        assert!(err.message.contains("at most 16384"), "{err}");
        assert!(engine().compile("  ").is_err());
    }

    #[test]
    fn eval_is_refused() {
        assert!(engine().compile(r#"eval("1")"#).is_err());
        assert!(engine().compile("let e = eval; true").is_err());
    }

    #[test]
    fn print_and_debug_are_discarded() {
        assert_eq!(
            run(
                r#"print("to nowhere"); debug(entity); true"#,
                &EvalInput::default()
            ),
            Ok(true)
        );
    }

    #[test]
    fn sleep_and_modules_do_not_exist() {
        let err = run("sleep(10); true", &EvalInput::default()).expect_err("no sleep");
        assert!(matches!(err, EvalError::Runtime { .. }), "{err}");
        assert!(engine().compile(r#"import "x" as y; true"#).is_err());
    }

    #[test]
    fn infinite_loops_stop_on_the_operations_limit() {
        for src in ["loop {}", "while true {}", "let x = 0; loop { x += 1; }"] {
            let started = Instant::now();
            let err = run(src, &EvalInput::default()).expect_err(src);
            assert_eq!(
                err,
                EvalError::Limit(ScriptLimit::Operations(100_000)),
                "{src}"
            );
            assert!(err.to_string().contains("too many operations"));
            assert!(started.elapsed() < Duration::from_secs(2), "{src}");
        }
    }

    #[test]
    fn wall_clock_deadline_is_per_evaluation() {
        // A generous operations budget and a tiny deadline: the deadline must win.
        let engine = ConditionEngine::new(ScriptLimits {
            max_operations: 0,
            timeout: Duration::from_millis(20),
            ..ScriptLimits::default()
        });
        let spin = engine.compile("loop {}").expect("compiles");
        let started = Instant::now();
        let err = engine
            .evaluate(&spin, &EvalInput::default())
            .expect_err("times out");
        assert_eq!(
            err,
            EvalError::Limit(ScriptLimit::Timeout(Duration::from_millis(20)))
        );
        assert!(err.to_string().contains("timed out after 20ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // The next evaluation on the same thread gets a fresh deadline.
        let quick = engine.compile("1 < 2").expect("compiles");
        assert_eq!(engine.evaluate(&quick, &EvalInput::default()), Ok(true));
        assert_eq!(DEADLINE.get(), None);
    }

    #[test]
    fn string_growth_stops_on_the_size_limit() {
        let err = run(
            r#"let s = "xxxxxxxx"; loop { s += s; }"#,
            &EvalInput::default(),
        )
        .expect_err("bomb");
        assert_eq!(err, EvalError::Limit(ScriptLimit::StringSize(64 * 1024)));
    }

    #[test]
    fn array_growth_stops_on_the_size_limit() {
        let err = run("let a = [1]; loop { a += a; }", &EvalInput::default()).expect_err("bomb");
        assert_eq!(err, EvalError::Limit(ScriptLimit::ArraySize(10_000)));
    }

    #[test]
    fn deep_recursion_stops_on_the_call_limit() {
        let err = run("fn f(n) { f(n + 1) } f(0)", &EvalInput::default()).expect_err("deep");
        assert_eq!(err, EvalError::Limit(ScriptLimit::CallLevels(16)));
    }

    #[test]
    fn deep_expressions_are_refused_at_compile_time() {
        let src = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert!(engine().compile(&src).is_err());
    }

    #[test]
    fn non_bool_result_is_an_error() {
        let err = run("1", &EvalInput::default()).expect_err("not bool");
        assert_eq!(err.to_string(), "condition must return a bool, got i64");
        let err = run(r#""yes""#, &EvalInput::default()).expect_err("not bool");
        assert_eq!(err, EvalError::NotBool("string".to_owned()));
    }

    #[test]
    fn inputs_cannot_be_modified() {
        let input = order(120.0, "DE");
        let err = run("entity.total = 0; true", &input).expect_err("constant");
        assert!(matches!(err, EvalError::Runtime { .. }), "{err}");
    }

    #[test]
    fn prepared_input_is_reused_unchanged() {
        let engine = engine();
        let prepared = order(120.0, "DE").prepare();
        let mutate = engine
            .compile("let e = entity; e.total = 0; e.customer.country = \"FR\"; true")
            .expect("compiles");
        assert_eq!(engine.evaluate_prepared(&mutate, &prepared), Ok(true));
        let check = engine
            .compile(r#"entity.total == 120.0 && entity.customer.country == "DE""#)
            .expect("compiles");
        assert_eq!(engine.evaluate_prepared(&check, &prepared), Ok(true));
    }

    #[test]
    fn runtime_errors_are_reported_not_raised() {
        let err = run(r#"throw "nope""#, &EvalInput::default()).expect_err("thrown");
        assert!(err.to_string().contains("nope"), "{err}");
        let input = EvalInput {
            entity: json!({"qty": 1}),
            ..EvalInput::default()
        };
        let err = run("entity.qty / 0 > 1", &input).expect_err("division by zero");
        assert!(matches!(err, EvalError::Runtime { .. }), "{err}");
    }

    #[test]
    fn closures_work_but_cannot_capture_what_they_iterate() {
        let input = EvalInput {
            entity: json!({"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 5}], "min": 3}),
            ..EvalInput::default()
        };
        assert_eq!(run("entity.items.some(|i| i.qty > 3)", &input), Ok(true));
        assert_eq!(
            run(
                "let min = entity.min; entity.items.some(|i| i.qty > min)",
                &input
            ),
            Ok(true)
        );
        // Rhai limitation: capturing `entity` makes it shared, and iterating a part of it while
        // the closure holds it is reported as a data race. An error, not a hang or a panic.
        let err = run("entity.items.some(|i| i.qty > entity.min)", &input).expect_err("data race");
        assert!(err.to_string().contains("Data race"), "{err}");
    }
}
