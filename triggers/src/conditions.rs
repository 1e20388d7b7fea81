//! Declarative `conditions`: a map of dot paths into the entity to the values they must equal.
//!
//! This is the cheap, script-free filter most workflows use (`{"status": "delivered"}`); it is
//! evaluated in full even when an early key fails, so a dry run can show every key's result.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{TriggerError, echo};

/// At most this many keys per workflow: more is a sign of a generated payload, not a filter.
pub const MAX_CONDITION_KEYS: usize = 64;
/// At most this many characters per key.
pub const MAX_CONDITION_KEY_LEN: usize = 256;

/// The outcome of one key of `conditions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionResult {
    pub path: String,
    pub expected: Value,
    /// The value found at `path`; absent when the path does not exist in the entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
    pub holds: bool,
}

/// Follows a dot path (`customer.address.country`, `items.0.sku`) into `value`.
///
/// Segments name object keys; a segment that parses as an index selects that element of an
/// array. The empty path is the value itself.
pub fn lookup<'a>(value: &'a Value, dot_path: &str) -> Option<&'a Value> {
    if dot_path.is_empty() {
        return Some(value);
    }
    dot_path
        .split('.')
        .try_fold(value, |current, segment| match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Evaluates every key of `conditions` against `entity`, in the map's order.
///
/// The workflow matches when every result `holds`; see [`values_equal`] for what "equal" means.
pub fn conditions_hold(conditions: &Map<String, Value>, entity: &Value) -> Vec<ConditionResult> {
    conditions
        .iter()
        .map(|(path, expected)| {
            let actual = lookup(entity, path);
            ConditionResult {
                path: path.clone(),
                expected: expected.clone(),
                holds: match actual {
                    Some(actual) => values_equal(expected, actual),
                    // A missing field and an explicit null mean the same to a store: "not set".
                    None => expected.is_null(),
                },
                actual: actual.cloned(),
            }
        })
        .collect()
}

/// JSON equality, except that numbers compare by value (`120.5 == 120.50`, `1 == 1.0`), also
/// inside arrays and objects. Strings compare case-sensitively; no type coercion otherwise
/// (`"1"` is not `1`, `true` is not `"true"`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            // Integers compare exactly: two order ids above 2^53 must not collapse to one float.
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                }
            }
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| values_equal(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| values_equal(x, y)))
        }
        _ => a == b,
    }
}

/// Save-time check of a workflow's `conditions`: bounded size and well-formed paths, so a typo
/// like `customer..country` is refused instead of silently never matching.
pub fn validate_conditions(conditions: &Map<String, Value>) -> Result<(), TriggerError> {
    if conditions.len() > MAX_CONDITION_KEYS {
        return Err(TriggerError::TooManyConditions {
            count: conditions.len(),
            max: MAX_CONDITION_KEYS,
        });
    }
    for key in conditions.keys() {
        let reason = if key.is_empty() {
            Some("the key is empty")
        } else if key.chars().count() > MAX_CONDITION_KEY_LEN {
            Some("the key is longer than 256 characters")
        } else if key.split('.').any(str::is_empty) {
            Some("a dot path may not have empty segments (leading, trailing or double dots)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(TriggerError::InvalidConditionKey {
                key: echo(key),
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn lookup_follows_objects_and_array_indexes() {
        let v = json!({"customer": {"country": "DE"}, "items": [{"sku": "A"}, {"sku": "B"}]});
        assert_eq!(lookup(&v, "customer.country"), Some(&json!("DE")));
        assert_eq!(lookup(&v, "items.1.sku"), Some(&json!("B")));
        assert_eq!(lookup(&v, "items.2.sku"), None);
        assert_eq!(lookup(&v, "items.x"), None);
        assert_eq!(lookup(&v, "customer.country.code"), None);
        assert_eq!(lookup(&v, "missing"), None);
        assert_eq!(lookup(&v, ""), Some(&v));
    }

    #[test]
    fn numbers_compare_by_value_strings_by_case() {
        let entity =
            json!({"total": 120.5, "qty": 1, "status": "Delivered", "id": 9007199254740993_u64});
        let results = conditions_hold(
            &map(json!({
                "total": 120.50,
                "qty": 1.0,
                "status": "delivered",
                "id": 9007199254740992_u64,
            })),
            &entity,
        );
        let holds: Vec<_> = results.iter().map(|r| (r.path.as_str(), r.holds)).collect();
        assert_eq!(
            holds,
            [
                ("total", true),
                ("qty", true),
                ("status", false),
                ("id", false)
            ]
        );
        assert_eq!(results[2].actual, Some(json!("Delivered")));
    }

    #[test]
    fn no_coercion_between_types() {
        let entity = json!({"qty": 1, "flag": true});
        let results = conditions_hold(&map(json!({"qty": "1", "flag": "true"})), &entity);
        assert!(results.iter().all(|r| !r.holds));
    }

    #[test]
    fn nested_values_and_missing_paths() {
        let entity = json!({"tags": [1, "a"], "customer": {"country": "DE"}});
        let results = conditions_hold(
            &map(json!({
                "tags": [1.0, "a"],
                "customer": {"country": "DE"},
                "customer.email": "x@example.com",
                "cancelledAt": null,
            })),
            &entity,
        );
        assert!(results[0].holds);
        assert!(results[1].holds);
        assert!(!results[2].holds);
        assert_eq!(results[2].actual, None);
        // Missing equals null: "not set".
        assert!(results[3].holds);
    }

    #[test]
    fn every_key_is_evaluated_even_after_a_failure() {
        let entity = json!({"a": 1, "b": 2});
        let results = conditions_hold(&map(json!({"a": 0, "b": 2})), &entity);
        assert_eq!(results.len(), 2);
        assert!(!results[0].holds && results[1].holds);
    }

    #[test]
    fn result_serializes_camel_case_without_missing_actual() {
        let entity = json!({});
        let results = conditions_hold(&map(json!({"x.y": 1})), &entity);
        let out = serde_json::to_value(&results[0]).expect("serializable");
        assert_eq!(out, json!({"path": "x.y", "expected": 1, "holds": false}));
    }

    #[test]
    fn validation_refuses_bad_keys_and_too_many() {
        assert!(validate_conditions(&map(json!({"customer.country": "DE"}))).is_ok());
        for bad in ["", ".a", "a.", "a..b"] {
            let mut m = Map::new();
            m.insert(bad.to_owned(), json!(1));
            let err = validate_conditions(&m).expect_err(bad);
            assert!(
                matches!(err, TriggerError::InvalidConditionKey { .. }),
                "{bad}"
            );
        }
        let mut m = Map::new();
        m.insert("k".repeat(257), json!(1));
        assert!(validate_conditions(&m).is_err());
        let many: Map<_, _> = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            validate_conditions(&many),
            Err(TriggerError::TooManyConditions { count: 65, max: 64 })
        );
    }
}
