//! Deciding whether one workflow matches one event: its `conditions` map and its `condition`
//! script must both hold.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::conditions::{ConditionResult, conditions_hold};
use crate::script::{CompiledCondition, ConditionEngine, EvalError, EvalInput, PreparedInput};

/// A workflow's filters, as compiled at save time.
#[derive(Debug, Clone, Default)]
pub struct WorkflowConditions {
    pub conditions: Map<String, Value>,
    pub condition: Option<CompiledCondition>,
}

/// The script's part of a [`MatchReport`]: its answer, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptResult {
    pub result: Option<bool>,
    pub error: Option<String>,
}

/// Whether a workflow matched, and every part's outcome (shown by dry runs, recorded on events).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchReport {
    pub matched: bool,
    pub conditions: Vec<ConditionResult>,
    pub script: Option<ScriptResult>,
}

/// Evaluates both the map and the script, even when the map already failed, so a dry run shows
/// every result. A script error means "not matched", with the error kept.
pub fn evaluate(
    engine: &ConditionEngine,
    wc: &WorkflowConditions,
    input: &EvalInput,
) -> MatchReport {
    let script = wc
        .condition
        .as_ref()
        .map(|cond| script_result(engine.evaluate(cond, input)));
    report(wc, &input.entity, script)
}

/// [`evaluate`] for the many workflows of one event: the input is converted once, by the caller.
/// `entity` must be the JSON `prepared` was made from.
pub fn evaluate_prepared(
    engine: &ConditionEngine,
    wc: &WorkflowConditions,
    entity: &Value,
    prepared: &PreparedInput,
) -> MatchReport {
    let script = wc
        .condition
        .as_ref()
        .map(|cond| script_result(engine.evaluate_prepared(cond, prepared)));
    report(wc, entity, script)
}

/// [`evaluate_prepared`] whose script stops at `deadline` as well (the rest of an event's
/// matching budget; see [`ConditionEngine::evaluate_prepared_until`]).
pub fn evaluate_prepared_until(
    engine: &ConditionEngine,
    wc: &WorkflowConditions,
    entity: &Value,
    prepared: &PreparedInput,
    deadline: std::time::Instant,
) -> MatchReport {
    let script = wc
        .condition
        .as_ref()
        .map(|cond| script_result(engine.evaluate_prepared_until(cond, prepared, deadline)));
    report(wc, entity, script)
}

fn script_result(outcome: Result<bool, EvalError>) -> ScriptResult {
    match outcome {
        Ok(b) => ScriptResult {
            result: Some(b),
            error: None,
        },
        Err(e) => ScriptResult {
            result: None,
            error: Some(e.to_string()),
        },
    }
}

fn report(wc: &WorkflowConditions, entity: &Value, script: Option<ScriptResult>) -> MatchReport {
    let conditions = conditions_hold(&wc.conditions, entity);
    let matched = conditions.iter().all(|c| c.holds)
        && script.as_ref().is_none_or(|s| s.result == Some(true));
    MatchReport {
        matched,
        conditions,
        script,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wc(engine: &ConditionEngine, conditions: Value, script: Option<&str>) -> WorkflowConditions {
        WorkflowConditions {
            conditions: match conditions {
                Value::Object(m) => m,
                other => panic!("not an object: {other}"),
            },
            condition: script.map(|s| engine.compile(s).expect("compiles")),
        }
    }

    fn input(total: f64, status: &str) -> EvalInput {
        EvalInput {
            entity: json!({"total": total, "status": status}),
            ..EvalInput::default()
        }
    }

    #[test]
    fn no_filters_match_everything() {
        let engine = ConditionEngine::default();
        let report = evaluate(&engine, &WorkflowConditions::default(), &input(1.0, "x"));
        assert!(report.matched);
        assert!(report.conditions.is_empty() && report.script.is_none());
    }

    #[test]
    fn both_must_hold_and_both_are_reported() {
        let engine = ConditionEngine::default();
        let w = wc(
            &engine,
            json!({"status": "paid"}),
            Some("entity.total > 100"),
        );

        let both = evaluate(&engine, &w, &input(150.0, "paid"));
        assert!(both.matched);

        let map_fails = evaluate(&engine, &w, &input(150.0, "pending"));
        assert!(!map_fails.matched);
        assert!(!map_fails.conditions[0].holds);
        // The script ran anyway, for the dry run's benefit.
        assert_eq!(
            map_fails.script,
            Some(ScriptResult {
                result: Some(true),
                error: None
            })
        );

        let script_fails = evaluate(&engine, &w, &input(50.0, "paid"));
        assert!(!script_fails.matched);
        assert!(script_fails.conditions[0].holds);
    }

    #[test]
    fn script_error_is_not_a_match_and_is_kept() {
        let engine = ConditionEngine::default();
        let w = wc(&engine, json!({}), Some("loop {}"));
        let report = evaluate(&engine, &w, &input(1.0, "paid"));
        assert!(!report.matched);
        let script = report.script.expect("script ran");
        assert_eq!(script.result, None);
        assert!(
            script
                .error
                .as_deref()
                .is_some_and(|e| e.contains("too many operations"))
        );
        let out = serde_json::to_value(evaluate(
            &engine,
            &wc(&engine, json!({"status": "paid"}), None),
            &input(1.0, "paid"),
        ))
        .expect("serializable");
        assert_eq!(
            out,
            json!({"matched": true, "conditions": [{"path": "status", "expected": "paid", "actual": "paid", "holds": true}], "script": null})
        );
    }

    #[test]
    fn prepared_evaluation_agrees() {
        let engine = ConditionEngine::default();
        let w = wc(
            &engine,
            json!({"status": "paid"}),
            Some("entity.total > 100"),
        );
        let i = input(150.0, "paid");
        let prepared = i.prepare();
        assert_eq!(
            evaluate_prepared(&engine, &w, &i.entity, &prepared),
            evaluate(&engine, &w, &i)
        );
    }
}
