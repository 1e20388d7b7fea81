//! The catch-up rule, pure: given a schedule, the last tick already decided and the time now,
//! which tick to fire and which to record as skipped. Takes the clock as an argument.
//!
//! Only the newest due tick is ever fired, and only when it is less than one period late; every
//! older tick still undecided was missed (no scheduler ran, or none got to it in time) and is at
//! least one period late by then, so it is not fired. Missed ticks are never enumerated: a
//! per-second schedule down for a day would be 86,400 of them. One skipped row names the range
//! instead. So a scheduler coming back never fires a storm, and a user can see what was lost.

use chrono::{DateTime, Duration, Utc};
use switchyard_triggers::CronSchedule;

/// What one pass does about one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// A tick to record as skipped, with why (at most one per pass, whatever was missed).
    pub skip: Option<Skip>,
    /// The tick to fire.
    pub fire: Option<DateTime<Utc>>,
    /// Every tick at or before this is decided; the next pass looks only after it.
    pub decided_through: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub tick: DateTime<Utc>,
    pub reason: String,
}

/// Decides the ticks in `(after, now]`; `None` when there are none.
pub fn plan(cron: &CronSchedule, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<Plan> {
    let due = cron.prev_tick_at_or_before(now)?;
    if due <= after {
        return None;
    }
    // Ticks strictly between `after` and `due`: a later tick is due, so each is at least one
    // period late. Only the first and the last are looked up, never the ones between.
    let missed = cron
        .next_after(after)
        .filter(|first| *first < due)
        .map(|first| {
            let last = cron
                .prev_tick_at_or_before(due - Duration::milliseconds(1))
                .filter(|last| *last >= first)
                .unwrap_or(first);
            (first, last)
        });
    let missed_text = |(first, last): (DateTime<Utc>, DateTime<Utc>)| {
        if first == last {
            format!("the tick of {} was missed", stamp(first))
        } else {
            format!(
                "the ticks from {} to {} were missed",
                stamp(first),
                stamp(last)
            )
        }
    };
    let late = now - due;
    let plan = match period_ending_at(cron, due) {
        Some(period) if late >= period => {
            let mut reason = format!(
                "not fired: found {} late, more than one period ({}) after its time",
                human(late),
                human(period)
            );
            if let Some(range) = missed {
                reason.push_str("; before it, ");
                reason.push_str(&missed_text(range));
            }
            Plan {
                skip: Some(Skip { tick: due, reason }),
                fire: None,
                decided_through: due,
            }
        }
        _ => Plan {
            skip: missed.map(|range| Skip {
                tick: range.1,
                reason: format!(
                    "not fired: no scheduler ran in time; {} (a tick more than one period late \
                     is not caught up; the next one, {}, was fired)",
                    missed_text(range),
                    stamp(due)
                ),
            }),
            fire: Some(due),
            decided_through: due,
        },
    };
    Some(plan)
}

/// "One period" at `due`: the gap since the tick before it, which is what a regular schedule
/// ticks at. For a weekday schedule, Friday's tick found on Monday morning is three days late
/// against a one-day gap, so it is skipped rather than sent an hour before Monday's. A schedule's
/// very first tick has no gap before it; the period after it ([`CronSchedule::period_hint`])
/// stands in. `None` when the schedule has no other tick at all: then it is fired.
fn period_ending_at(cron: &CronSchedule, due: DateTime<Utc>) -> Option<Duration> {
    let just_before = due - Duration::milliseconds(1);
    match cron.prev_tick_at_or_before(just_before) {
        Some(previous) => Some(due - previous),
        None => cron.period_hint(just_before),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn human(d: Duration) -> String {
    let d = d.to_std().unwrap_or_default();
    // Whole seconds read better; ticks are whole seconds anyway.
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use switchyard_schemas::Schedule;

    use super::*;

    fn schedule(cron: &str) -> CronSchedule {
        CronSchedule::parse(&Schedule {
            cron: cron.to_owned(),
            timezone: "Europe/Berlin".to_owned(),
        })
        .expect("valid schedule")
    }

    fn at(h: u32, m: u32, s: u32, ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, h, m, s)
            .single()
            .expect("valid time")
            + Duration::milliseconds(ms)
    }

    #[test]
    fn a_tick_found_on_time_fires() {
        let every_2s = schedule("*/2 * * * * *");
        let plan = plan(&every_2s, at(12, 0, 0, 0), at(12, 0, 2, 300)).expect("due");
        assert_eq!(plan.fire, Some(at(12, 0, 2, 0)));
        assert_eq!(plan.skip, None);
        assert_eq!(plan.decided_through, at(12, 0, 2, 0));
    }

    #[test]
    fn nothing_is_due_before_the_next_tick_or_at_the_decided_one() {
        let every_2s = schedule("*/2 * * * * *");
        assert_eq!(plan(&every_2s, at(12, 0, 2, 0), at(12, 0, 3, 999)), None);
        assert_eq!(plan(&every_2s, at(12, 0, 2, 0), at(12, 0, 2, 0)), None);
        // A workflow saved between two ticks: the tick before it is not "missed".
        assert_eq!(plan(&every_2s, at(12, 0, 2, 500), at(12, 0, 3, 0)), None);
    }

    #[test]
    fn after_downtime_the_newest_tick_fires_and_the_missed_ones_are_one_skip() {
        let every_2s = schedule("*/2 * * * * *");
        // Last decided 12:00:00, back at 12:01:00.4: 29 ticks missed, 12:01:00 is 400 ms late.
        let plan = plan(&every_2s, at(12, 0, 0, 0), at(12, 1, 0, 400)).expect("due");
        assert_eq!(plan.fire, Some(at(12, 1, 0, 0)));
        let skip = plan.skip.expect("a skip");
        assert_eq!(skip.tick, at(12, 0, 58, 0));
        assert!(
            skip.reason
                .contains("2026-05-04T12:00:02Z to 2026-05-04T12:00:58Z"),
            "{}",
            skip.reason
        );
        assert_eq!(plan.decided_through, at(12, 1, 0, 0));

        // Exactly one tick missed.
        let plan = super::plan(&every_2s, at(12, 0, 0, 0), at(12, 0, 4, 10)).expect("due");
        assert_eq!(plan.fire, Some(at(12, 0, 4, 0)));
        assert_eq!(plan.skip.expect("a skip").tick, at(12, 0, 2, 0));
    }

    #[test]
    fn a_tick_more_than_one_period_late_is_skipped_not_fired() {
        // Weekdays at 09:00 Berlin (07:00 UTC in May). 2026-05-01 is a Friday, 05-04 a Monday.
        let weekdays = schedule("0 0 9 * * Mon-Fri");
        let friday = Utc
            .with_ymd_and_hms(2026, 5, 1, 7, 0, 0)
            .single()
            .expect("time");
        let thursday = friday - Duration::days(1);
        // Back on Monday at 08:00 Berlin: Friday's tick is 71 h late against a 24 h period.
        let plan = plan(&weekdays, thursday, at(6, 0, 0, 0)).expect("due");
        assert_eq!(plan.fire, None);
        let skip = plan.skip.expect("a skip");
        assert_eq!(skip.tick, friday);
        assert!(
            skip.reason
                .contains("2days 23h late, more than one period (1day)"),
            "{}",
            skip.reason
        );
        assert_eq!(plan.decided_through, friday);
        // Monday's tick, an hour later, is on time again.
        let monday = super::plan(&weekdays, friday, at(7, 0, 0, 200)).expect("due");
        assert_eq!(monday.fire, Some(at(7, 0, 0, 0)));
        assert_eq!(monday.skip, None);
    }

    #[test]
    fn a_daily_tick_a_few_hours_late_still_fires_once() {
        let daily = schedule("0 0 9 * * *");
        // Down from 08:00 to 12:00 Berlin: the 09:00 tick is 3 h late, less than a day.
        let plan = plan(&daily, at(6, 0, 0, 0), at(10, 0, 0, 0)).expect("due");
        assert_eq!(plan.fire, Some(at(7, 0, 0, 0)));
        assert_eq!(plan.skip, None);
    }
}
