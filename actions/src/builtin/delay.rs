//! `delay`: the execution waits, without holding a worker, before its next step.

use std::time::Duration;

use serde::Deserialize;

use crate::{Action, ActionError, Effect, Outcome, StepContext, ValidationError};

/// The longest wait a step may ask for.
const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayConfig {
    /// `"90s"`, `"15m"`, `"2h"`, `"3d"`.
    pub duration: String,
}

/// Parses `"90s"`, `"2h"`, `"3d"`, `"1h 30m"` (humantime's grammar) within 1 s … 366 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like \"90s\", \"2h\" or \"3d\": {e}"))?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    if d > MAX_DELAY {
        return Err("must be at most 366d".to_owned());
    }
    Ok(d)
}

/// Parks the execution as `waiting`; the engine schedules the next step after the duration.
pub struct DelayAction;

impl Action for DelayAction {
    type Config = DelayConfig;

    fn kind(&self) -> &'static str {
        "delay"
    }

    fn description(&self) -> &'static str {
        "Wait before the next step, without holding a worker"
    }

    fn validate(&self, config: &Self::Config) -> Result<(), ValidationError> {
        parse_duration(&config.duration)
            .map(|_| ())
            .map_err(|e| ValidationError::field("duration", e))
    }

    async fn execute(
        &self,
        config: Self::Config,
        _ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let duration = parse_duration(&config.duration).map_err(ActionError::permanent)?;
        Ok(
            Outcome::summary(format!("waiting {}", humantime::format_duration(duration)))
                .with_effect(Effect::Wait { duration }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_the_contract_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("400d").is_err());
    }
}
