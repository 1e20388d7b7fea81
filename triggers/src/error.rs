//! The one error type of this crate: everything here is a client mistake found while validating a
//! workflow, so every variant reads as a 400 `VALIDATION_ERROR` message.

use switchyard_schemas::EntityType;
use thiserror::Error;

use crate::script::CompileError;

/// Echoed user input is cut to this many characters, so a megabyte of garbage in a field does not
/// come back as a megabyte of error message.
const ECHO_LIMIT: usize = 80;

/// A workflow's trigger, conditions, condition script or schedule is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TriggerError {
    #[error("unknown trigger `{given}`; valid triggers for {entity} are {}", .valid.join(", "))]
    UnknownTrigger {
        given: String,
        entity: EntityType,
        valid: Vec<&'static str>,
    },

    #[error(
        "trigger `{code}` belongs to {belongs_to}, not {requested}; valid triggers for {requested} are {}",
        .valid.join(", ")
    )]
    WrongEntity {
        code: &'static str,
        belongs_to: EntityType,
        requested: EntityType,
        valid: Vec<&'static str>,
    },

    #[error("invalid condition key `{key}`: {reason}")]
    InvalidConditionKey { key: String, reason: &'static str },

    #[error("too many conditions: {count} given, at most {max} allowed")]
    TooManyConditions { count: usize, max: usize },

    #[error("invalid condition script: {0}")]
    InvalidScript(#[from] CompileError),

    #[error("invalid cron expression `{expression}`: {reason}")]
    InvalidCron { expression: String, reason: String },

    #[error("unknown time zone `{0}`: expected an IANA name such as `Europe/Berlin` or `UTC`")]
    UnknownTimeZone(String),
}

impl TriggerError {
    /// The text for the API's error body (`VALIDATION_ERROR`). It only ever contains what the
    /// client sent (shortened) and the catalog, never internal state.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The field of the workflow body at fault, so the API can point at it.
    pub fn field(&self) -> &'static str {
        match self {
            TriggerError::UnknownTrigger { .. } | TriggerError::WrongEntity { .. } => "triggerId",
            TriggerError::InvalidConditionKey { .. } | TriggerError::TooManyConditions { .. } => {
                "conditions"
            }
            TriggerError::InvalidScript(_) => "condition",
            TriggerError::InvalidCron { .. } | TriggerError::UnknownTimeZone(_) => "schedule",
        }
    }
}

/// Shortens user input for an error message, marking the cut.
pub(crate) fn echo(input: &str) -> String {
    if input.chars().count() <= ECHO_LIMIT {
        input.to_owned()
    } else {
        let mut s: String = input.chars().take(ECHO_LIMIT).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_long_input() {
        assert_eq!(echo("short"), "short");
        let long = "x".repeat(10_000);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), ECHO_LIMIT + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn field_points_at_the_faulty_part() {
        assert_eq!(
            TriggerError::UnknownTimeZone("x".into()).field(),
            "schedule"
        );
        let e = TriggerError::TooManyConditions { count: 65, max: 64 };
        assert_eq!(e.field(), "conditions");
        assert_eq!(
            e.message(),
            "too many conditions: 65 given, at most 64 allowed"
        );
    }
}
