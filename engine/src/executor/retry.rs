//! When a failing step runs again: the operator's retry schedule with ±20 % jitter, or the delay
//! the peer asked for (`Retry-After`). Pure, so it is tested without sleeping.

use std::time::Duration;

/// The longest a peer's `Retry-After` may push a retry out.
const MAX_PEER_DELAY: Duration = Duration::from_secs(24 * 3600);

/// What to do after the `failures`-th failure (1 for the first) of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Run again after this long.
    After(Duration),
    /// The schedule is spent.
    GiveUp,
}

/// `jitter` is a number in [0, 1) (random in production) that spreads retries of many steps
/// failing together over ±20 % of the scheduled delay.
pub fn decide(
    schedule: &[Duration],
    failures: usize,
    peer_hint: Option<Duration>,
    jitter: f64,
) -> RetryDecision {
    let Some(base) = failures.checked_sub(1).and_then(|i| schedule.get(i)) else {
        return RetryDecision::GiveUp;
    };
    if let Some(hint) = peer_hint {
        return RetryDecision::After(hint.min(MAX_PEER_DELAY));
    }
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    RetryDecision::After(base.mul_f64(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn follows_the_schedule_with_jitter_then_gives_up() {
        let schedule = [secs(5), secs(300)];
        assert_eq!(
            decide(&schedule, 1, None, 0.5),
            RetryDecision::After(secs(5))
        );
        assert_eq!(
            decide(&schedule, 1, None, 0.0),
            RetryDecision::After(secs(4))
        );
        assert_eq!(
            decide(&schedule, 2, None, 0.999_999),
            RetryDecision::After(secs(300).mul_f64(0.8 + 0.4 * 0.999_999))
        );
        assert_eq!(decide(&schedule, 3, None, 0.5), RetryDecision::GiveUp);
        assert_eq!(decide(&[], 1, None, 0.5), RetryDecision::GiveUp);
    }

    #[test]
    fn a_peer_hint_wins_but_is_capped() {
        let schedule = [secs(5)];
        assert_eq!(
            decide(&schedule, 1, Some(secs(7)), 0.5),
            RetryDecision::After(secs(7))
        );
        assert_eq!(
            decide(&schedule, 1, Some(secs(7 * 86400)), 0.5),
            RetryDecision::After(secs(86400))
        );
        assert_eq!(
            decide(&schedule, 2, Some(secs(7)), 0.5),
            RetryDecision::GiveUp
        );
    }
}
