//! Rhai conditions: arbitrary source → `ConditionEngine::compile` → `evaluate` on a fixed order.
//! Compiling and evaluating must never panic (a caught panic aborts the fuzzer too, so it is
//! found) and must always return within the sandbox's limits: the evaluation deadline is 50 ms,
//! and anything past `MAX_EVAL` is a script the sandbox failed to stop.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use switchyard_triggers::{ConditionEngine, EvalError, EvalInput, PreparedInput, ScriptLimit};

/// 20 times the default deadline: far enough from it that a loaded machine does not trip it.
const MAX_EVAL: Duration = Duration::from_secs(1);
/// Compiling a source of at most 16 KiB.
const MAX_COMPILE: Duration = Duration::from_secs(1);

static ENGINE: LazyLock<ConditionEngine> = LazyLock::new(ConditionEngine::default);

static INPUT: LazyLock<(EvalInput, PreparedInput)> = LazyLock::new(|| {
    let input = EvalInput {
        entity: json!({
            "id": "ord_1001",
            "status": "paid",
            "total": 129.5,
            "currency": "EUR",
            "customer": {"email": "ada@example.com", "country": "DE", "tags": ["vip", "b2b"]},
            "items": [
                {"sku": "SKU-1", "qty": 2, "price": 50},
                {"sku": "SKU-2", "qty": 1, "price": 29.5}
            ],
            "shipping": null,
            "big": 18_446_744_073_709_551_615_u64,
            "negative": i64::MIN
        }),
        event: json!({
            "trigger": "order_paid",
            "occurredAt": "2026-11-01T10:00:00Z",
            "previous": {"status": "pending"}
        }),
        tenant: json!({"id": "01990000-0000-7000-8000-000000000001"}),
    };
    let prepared = input.prepare();
    (input, prepared)
});

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let engine = &*ENGINE;
    let (input, prepared) = &*INPUT;
    let started = Instant::now();
    let compiled = engine.compile(source);
    let compile_time = started.elapsed();
    assert!(
        compile_time < MAX_COMPILE,
        "compiling took {compile_time:?}"
    );
    let Ok(compiled) = compiled else {
        return;
    };
    let started = Instant::now();
    let first = engine.evaluate(&compiled, input);
    let eval_time = started.elapsed();
    assert!(
        eval_time < MAX_EVAL,
        "evaluating took {eval_time:?}: {first:?}"
    );
    // The prepared path the matcher uses gives the same answer (scripts cannot carry state from
    // one evaluation to the next), except where the wall-clock deadline decides.
    let second = engine.evaluate_prepared(&compiled, prepared);
    let timed_out =
        |r: &Result<bool, EvalError>| matches!(r, Err(EvalError::Limit(ScriptLimit::Timeout(_))));
    if !timed_out(&first) && !timed_out(&second) {
        assert_eq!(first, second, "evaluate and evaluate_prepared disagree");
    }
});
