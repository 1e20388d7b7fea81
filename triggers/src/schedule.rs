//! Cron schedules of `<entity>_schedule` workflows: a cron expression with seconds, read in an
//! IANA time zone, turned into UTC tick times. Takes times as arguments, never reads the clock.
//!
//! # Daylight saving time
//!
//! Ticks are the instants whose local wall time in the schedule's zone matches the expression.
//! Pinned by the tests below:
//!
//! - **Spring forward** (a local hour does not exist): a tick whose wall time falls into the gap
//!   is skipped, not moved (the `cron` crate's behaviour). `0 30 2 * * *` in Europe/Berlin has
//!   no tick on 2026-03-29: the tick after 2026-03-28 02:30 CET is 2026-03-30 02:30 CEST.
//! - **Fall back** (a local hour happens twice): a wall time in the repeated hour is a tick at
//!   both instants, an hour apart. `0 30 2 * * *` in Europe/Berlin fires at 00:30 and at 01:30
//!   UTC on 2026-10-25, and `*/2 * * * * *` keeps ticking through both passes. The crate yields
//!   both only when its search starts before the repeated hour; searching from inside the first
//!   pass it looks only at later wall times and misses the second pass. [`CronSchedule`] adds
//!   that search, so the set of ticks does not depend on where a search starts: a scheduler
//!   restarted inside the repeated hour sees the same ticks as one that ran through it.

use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, LocalResult, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use switchyard_schemas::Schedule;

use crate::error::{TriggerError, echo};

/// A parsed, validated schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: cron::Schedule,
    zone: Tz,
}

impl CronSchedule {
    /// Parses `schedule`: `sec min hour day-of-month month day-of-week [year]` in `timezone`.
    pub fn parse(schedule: &Schedule) -> Result<CronSchedule, TriggerError> {
        let expression = schedule.cron.trim();
        let cron = cron::Schedule::from_str(expression).map_err(|e| TriggerError::InvalidCron {
            expression: echo(expression),
            reason: e.to_string(),
        })?;
        let zone_name = schedule.timezone.trim();
        let zone =
            Tz::from_str(zone_name).map_err(|_| TriggerError::UnknownTimeZone(echo(zone_name)))?;
        Ok(CronSchedule { cron, zone })
    }

    /// The schedule's time zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first tick strictly after `t`; `None` when the expression has no later tick (a past
    /// year, or a date that never exists such as 30 February).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The crate searches by wall time and yields both instants of a repeated wall time, the
        // earlier first; the earlier one may already be past in UTC, so skip what is not after
        // `t` (bounded: at most one repeated hour's worth of ticks).
        let by_wall = self
            .cron
            .after(&t.with_timezone(&self.zone))
            .map(|d| d.with_timezone(&Utc))
            .find(|d| *d > t);
        // From inside the first pass of a repeated hour, the second pass (wall times already
        // seen, instants still ahead) is searched with the second pass's fixed offset.
        let second_pass = match self.repeated_hour(t) {
            Some(Pass::First { other }) => self
                .cron
                .after(&t.with_timezone(&other))
                .map(|d| d.with_timezone(&Utc))
                .take_while(|d| by_wall.is_none_or(|b| *d < b))
                .find(|d| self.offset_at(*d) == other),
            _ => None,
        };
        [by_wall, second_pass].into_iter().flatten().min()
    }

    /// The latest tick at or before `t` (ticks have whole seconds; a fraction of `t` is ignored).
    pub fn prev_tick_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The crate's backwards search is strictly before a whole-second start, so start one
        // second after `t`'s whole second to include `t` itself.
        let whole = t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()));
        let start = whole + Duration::seconds(1);
        let by_wall = self
            .cron
            .after(&start.with_timezone(&self.zone))
            .rev()
            .map(|d| d.with_timezone(&Utc))
            .find(|d| *d <= t);
        // Mirror of `next_after`: from inside the second pass, first-pass ticks with later wall
        // times are still in the past.
        let first_pass = match self.repeated_hour(t) {
            Some(Pass::Second { other }) => self
                .cron
                .after(&start.with_timezone(&other))
                .rev()
                .map(|d| d.with_timezone(&Utc))
                .take_while(|d| by_wall.is_none_or(|b| *d > b))
                .find(|d| self.offset_at(*d) == other),
            _ => None,
        };
        [by_wall, first_pass].into_iter().flatten().max()
    }

    /// The length of the period following `t`: the tick after `t`'s next tick minus that next
    /// tick. Used to tell a tick that is a little late (run it) from one that was missed
    /// entirely. `None` when fewer than two ticks remain.
    pub fn period_hint(&self, t: DateTime<Utc>) -> Option<Duration> {
        let next = self.next_after(t)?;
        let after = self.next_after(next)?;
        Some(after - next)
    }

    fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        self.zone.offset_from_utc_datetime(&t.naive_utc()).fix()
    }

    /// Whether `t`'s wall time happens twice (a fall-back hour), and if so in which pass `t` is
    /// and what the other pass's offset is.
    fn repeated_hour(&self, t: DateTime<Utc>) -> Option<Pass> {
        let wall = t.with_timezone(&self.zone).naive_local();
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Ambiguous(earlier, later) => {
                let (earlier, later) = (earlier.offset().fix(), later.offset().fix());
                Some(if self.offset_at(t) == earlier {
                    Pass::First { other: later }
                } else {
                    Pass::Second { other: earlier }
                })
            }
            _ => None,
        }
    }
}

/// Which occurrence of a repeated wall time an instant is.
enum Pass {
    First { other: FixedOffset },
    Second { other: FixedOffset },
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(cron: &str, timezone: &str) -> CronSchedule {
        CronSchedule::parse(&Schedule {
            cron: cron.to_owned(),
            timezone: timezone.to_owned(),
        })
        .expect("valid schedule")
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid time")
    }

    #[test]
    fn every_two_seconds_ticks_strictly_after() {
        let s = schedule("*/2 * * * * *", "UTC");
        let t = utc(2026, 5, 1, 12, 0, 0);
        assert_eq!(s.next_after(t), Some(utc(2026, 5, 1, 12, 0, 2)));
        assert_eq!(
            s.next_after(t + Duration::milliseconds(1500)),
            Some(utc(2026, 5, 1, 12, 0, 2))
        );
        assert_eq!(s.prev_tick_at_or_before(t), Some(t));
        assert_eq!(
            s.prev_tick_at_or_before(t + Duration::milliseconds(1999)),
            Some(t)
        );
        assert_eq!(
            s.prev_tick_at_or_before(t - Duration::milliseconds(1)),
            Some(utc(2026, 5, 1, 11, 59, 58))
        );
        assert_eq!(s.period_hint(t), Some(Duration::seconds(2)));
    }

    #[test]
    fn time_zone_is_respected_winter_and_summer() {
        let s = schedule("0 0 9 * * *", "Europe/Berlin");
        // CET (UTC+1) in January, CEST (UTC+2) in July.
        assert_eq!(
            s.next_after(utc(2026, 1, 15, 0, 0, 0)),
            Some(utc(2026, 1, 15, 8, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 7, 15, 0, 0, 0)),
            Some(utc(2026, 7, 15, 7, 0, 0))
        );
        assert_eq!(
            s.period_hint(utc(2026, 7, 15, 0, 0, 0)),
            Some(Duration::days(1))
        );
        // Across the spring-forward night a "daily" period is 23 hours.
        assert_eq!(
            s.period_hint(utc(2026, 3, 28, 7, 0, 0)),
            Some(Duration::hours(23))
        );
    }

    #[test]
    fn spring_forward_skips_the_missing_tick() {
        let s = schedule("0 30 2 * * *", "Europe/Berlin");
        // 2026-03-28 02:30 CET = 01:30 UTC; 2026-03-29 02:30 does not exist in Berlin.
        let before = utc(2026, 3, 28, 1, 30, 0);
        assert_eq!(s.next_after(before), Some(utc(2026, 3, 30, 0, 30, 0)));
        assert_eq!(
            s.prev_tick_at_or_before(utc(2026, 3, 29, 12, 0, 0)),
            Some(before)
        );
    }

    #[test]
    fn fall_back_fires_at_both_instants() {
        let s = schedule("0 30 2 * * *", "Europe/Berlin");
        // 2026-10-25: 02:30 CEST = 00:30 UTC, then 02:30 CET = 01:30 UTC.
        let first = s.next_after(utc(2026, 10, 24, 12, 0, 0));
        assert_eq!(first, Some(utc(2026, 10, 25, 0, 30, 0)));
        let second = s.next_after(utc(2026, 10, 25, 0, 30, 0));
        assert_eq!(second, Some(utc(2026, 10, 25, 1, 30, 0)));
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 1, 0, 0)),
            Some(utc(2026, 10, 25, 1, 30, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 1, 30, 0)),
            Some(utc(2026, 10, 26, 1, 30, 0))
        );
        assert_eq!(
            s.prev_tick_at_or_before(utc(2026, 10, 25, 1, 0, 0)),
            Some(utc(2026, 10, 25, 0, 30, 0))
        );
        assert_eq!(
            s.prev_tick_at_or_before(utc(2026, 10, 25, 2, 0, 0)),
            Some(utc(2026, 10, 25, 1, 30, 0))
        );
    }

    fn ticks(s: &CronSchedule, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        std::iter::successors(s.next_after(from), |t| s.next_after(*t))
            .take_while(|t| *t <= until)
            .collect()
    }

    #[test]
    fn repeated_hour_ticks_do_not_depend_on_where_the_search_starts() {
        let s = schedule("0 */20 2 * * *", "Europe/Berlin");
        let until = utc(2026, 10, 25, 3, 0, 0);
        let all: Vec<_> = [(0, 0), (0, 20), (0, 40), (1, 0), (1, 20), (1, 40)]
            .into_iter()
            .map(|(h, m)| utc(2026, 10, 25, h, m, 0))
            .collect();
        assert_eq!(ticks(&s, utc(2026, 10, 24, 23, 0, 0), until), all);
        // Starting inside the first pass (02:50 CEST), the second pass is still ahead.
        assert_eq!(ticks(&s, utc(2026, 10, 25, 0, 50, 0), until), all[3..]);
        // Starting inside the second pass (02:05 CET), the first pass's 02:40 is behind.
        assert_eq!(
            s.prev_tick_at_or_before(utc(2026, 10, 25, 1, 5, 0)),
            Some(utc(2026, 10, 25, 1, 0, 0))
        );
        let late = schedule("0 50 2 * * *", "Europe/Berlin");
        assert_eq!(
            late.prev_tick_at_or_before(utc(2026, 10, 25, 1, 5, 0)),
            Some(utc(2026, 10, 25, 0, 50, 0))
        );

        let every_2s = schedule("*/2 * * * * *", "Europe/Berlin");
        let t = utc(2026, 10, 25, 0, 59, 58);
        assert_eq!(every_2s.next_after(t), Some(utc(2026, 10, 25, 1, 0, 0)));
        assert_eq!(every_2s.period_hint(t), Some(Duration::seconds(2)));
    }

    #[test]
    fn bad_expression_and_zone_are_rejected() {
        let err = CronSchedule::parse(&Schedule {
            cron: "every day".to_owned(),
            timezone: "UTC".to_owned(),
        })
        .expect_err("bad cron");
        assert!(
            err.message()
                .starts_with("invalid cron expression `every day`: "),
            "{err}"
        );
        assert_eq!(err.field(), "schedule");

        let err = CronSchedule::parse(&Schedule {
            cron: "0 0 9 * * *".to_owned(),
            timezone: "Mars/Base".to_owned(),
        })
        .expect_err("bad zone");
        assert!(
            err.message().starts_with("unknown time zone `Mars/Base`"),
            "{err}"
        );
    }

    #[test]
    fn a_schedule_that_never_fires_has_no_next_tick() {
        let s = schedule("0 0 0 30 2 *", "UTC");
        assert_eq!(s.next_after(utc(2026, 1, 1, 0, 0, 0)), None);
        assert_eq!(s.period_hint(utc(2026, 1, 1, 0, 0, 0)), None);
    }
}
