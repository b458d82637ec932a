//! Cron schedules in a named time zone, and what a schedule should fire after downtime.
//!
//! Parsing and evaluation are the `croner` crate's (5 fields, or 6 with seconds first; `L`, `W`,
//! `#`, names and `@daily`-style nicknames), evaluated in an IANA zone from `chrono-tz`, so
//! daylight-saving changes follow croner's rules: a fixed-time job whose local time falls in a
//! spring-forward gap runs at the first instant after the gap; in a fall-back overlap it runs
//! once, at the first occurrence. All instants handed in and out are UTC.
//!
//! [`CronSchedule::plan`] is the pure heart of the scheduler: given when the trigger was next due
//! and the time now, it says which scheduled times to fire (on-time ones, plus the missed ones
//! the [`MissedPolicy`] keeps) and when the trigger is due next.

use crate::trigger::MissedPolicy;
use crate::validate::ValidationError;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    tz: Tz,
    cron: Cron,
}

/// Most missed occurrences counted exactly; beyond it the count is reported as at least this.
pub const MISSED_COUNT_CAP: u64 = 100_000;

/// One scheduled time to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    pub scheduled_for: DateTime<Utc>,
    /// True when it was missed (older than the grace period) and is fired by the policy.
    pub missed: bool,
}

/// What the scheduler does for one due trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// Oldest first.
    pub fires: Vec<Fire>,
    /// Occurrences missed in total (capped at [`MISSED_COUNT_CAP`]), fired or not.
    pub missed: u64,
    /// The next occurrence after now; `None` when the schedule never fires again.
    pub next: Option<DateTime<Utc>>,
}

impl CronSchedule {
    /// Parses `expr` for zone `tz` (an IANA name such as `Europe/Prague`, or `UTC`). Errors name
    /// the `cron` or `tz` field.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, ValidationError> {
        let zone: Tz = tz.parse().map_err(|_| {
            ValidationError::new(
                "tz",
                format!(
                    "{tz:?} is not a known time zone; use an IANA name such as Europe/Prague or UTC"
                ),
            )
        })?;
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(ValidationError::new(
                "cron",
                format!(
                    "{expr:?} has {fields} field(s); expected 5 (minute hour day month weekday) or 6 (seconds first)"
                ),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| {
                ValidationError::new(
                    "cron",
                    format!("{expr:?} is not a valid cron expression: {e}"),
                )
            })?;
        let schedule = CronSchedule {
            expr: expr.trim().to_string(),
            tz: zone,
            cron,
        };
        // A pattern that parses but never matches (e.g. 30 February) is useless; say so now.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ValidationError::new(
                "cron",
                format!("{expr:?} never fires"),
            ));
        }
        Ok(schedule)
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn tz_name(&self) -> &str {
        self.tz.name()
    }

    /// The first occurrence strictly after `t` (sub-second parts of `t` are ignored, so an
    /// occurrence at `t`'s whole second is not "after" it).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last occurrence strictly before `t`.
    pub fn prev_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner compares whole seconds: an instant inside a second still comes after that
        // second's occurrence, so search from the next whole second.
        let t = ceil_to_second(t);
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` occurrences after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = t;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// Decides what to fire for a trigger that was due at `due` (itself an occurrence), now.
    ///
    /// Occurrences in `[now - grace, now]` are on time and always fire. Older ones were missed
    /// (the runtime was down, or the machine asleep): `policy` keeps none, the latest one, or
    /// the latest N of them.
    pub fn plan(
        &self,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        grace: TimeDelta,
        policy: MissedPolicy,
    ) -> FirePlan {
        let cutoff = now - grace;
        let mut fires = Vec::new();
        let mut missed = 0u64;
        if due <= now {
            if due < cutoff {
                // Count the missed occurrences (bounded), then walk back from the cutoff for the
                // ones the policy keeps: a week of a per-second schedule is never enumerated.
                let mut cursor = Some(due);
                while let Some(t) = cursor {
                    if t >= cutoff || missed >= MISSED_COUNT_CAP {
                        break;
                    }
                    missed += 1;
                    cursor = self.next_after(t);
                }
                let mut kept = Vec::new();
                let mut cursor = self.prev_before(cutoff);
                while kept.len() < policy.keep() {
                    match cursor {
                        Some(t) if t >= due => {
                            kept.push(Fire {
                                scheduled_for: t,
                                missed: true,
                            });
                            cursor = self.prev_before(t);
                        }
                        _ => break,
                    }
                }
                kept.reverse();
                fires.extend(kept);
            }
            // The first occurrence at or after the cutoff (whole seconds, like croner).
            let mut cursor = if due >= cutoff {
                Some(due)
            } else {
                self.next_after(ceil_to_second(cutoff) - TimeDelta::seconds(1))
            };
            while let Some(t) = cursor {
                if t > now {
                    break;
                }
                if t >= cutoff {
                    fires.push(Fire {
                        scheduled_for: t,
                        missed: false,
                    });
                }
                cursor = self.next_after(t);
            }
        }
        let next = if due > now {
            Some(due)
        } else {
            self.next_after(now)
        };
        FirePlan {
            fires,
            missed,
            next,
        }
    }
}

fn ceil_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let ms = t.timestamp_millis();
    let rem = ms.rem_euclid(1000);
    if rem == 0 {
        t
    } else {
        t + TimeDelta::milliseconds(1000 - rem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_fields_parse_and_bad_ones_name_the_field() {
        assert!(CronSchedule::parse("0 8 * * 1-5", "Europe/Prague").is_ok());
        assert!(CronSchedule::parse("*/10 * * * * *", "UTC").is_ok());
        assert!(CronSchedule::parse("@daily", "UTC").is_ok());
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "0 8 * * mon-xyz",
        ] {
            let e = CronSchedule::parse(bad, "UTC").expect_err(bad);
            assert_eq!(e.field, "cron", "{bad}: {e}");
        }
        let e = CronSchedule::parse("0 8 * * *", "Mars/Olympus").expect_err("zone");
        assert_eq!(e.field, "tz");
        let e = CronSchedule::parse("0 0 30 2 *", "UTC").expect_err("30 February");
        assert!(e.message.contains("never fires"), "{e}");
    }

    #[test]
    fn seconds_schedules_fire_every_second() {
        let s = CronSchedule::parse("* * * * * *", "UTC").expect("parse");
        let t = utc("2026-01-01T10:00:00.400Z");
        assert_eq!(s.next_after(t), Some(utc("2026-01-01T10:00:01Z")));
        assert_eq!(s.prev_before(t), Some(utc("2026-01-01T10:00:00Z")));
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        // Prague is UTC+1 in winter and UTC+2 in summer; 08:00 local moves in UTC.
        let s = CronSchedule::parse("0 8 * * 1-5", "Europe/Prague").expect("parse");
        assert_eq!(
            s.next_after(utc("2026-01-05T00:00:00Z")),
            Some(utc("2026-01-05T07:00:00Z")),
            "winter Monday"
        );
        assert_eq!(
            s.next_after(utc("2026-07-06T00:00:00Z")),
            Some(utc("2026-07-06T06:00:00Z")),
            "summer Monday"
        );
        // Friday 08:00 → the next is Monday, not the weekend.
        assert_eq!(
            s.next_after(utc("2026-01-09T07:00:00Z")),
            Some(utc("2026-01-12T07:00:00Z"))
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_runs_right_after_it_and_the_fall_overlap_runs_once() {
        // 29 March 2026: Prague jumps from 02:00 to 03:00 local (01:00 UTC).
        let s = CronSchedule::parse("30 2 * * *", "Europe/Prague").expect("parse");
        assert_eq!(
            s.next_after(utc("2026-03-28T12:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z")),
            "02:30 does not exist that day: fires at 03:00 local"
        );
        // 25 October 2026: 02:00–03:00 local happens twice; a fixed-time job runs once.
        let first = s.next_after(utc("2026-10-24T12:00:00Z")).expect("first");
        assert_eq!(
            first,
            utc("2026-10-25T00:30:00Z"),
            "first 02:30 (summer time)"
        );
        let second = s.next_after(first).expect("next");
        assert_eq!(
            second,
            utc("2026-10-26T01:30:00Z"),
            "not again in the repeated hour"
        );
    }

    #[test]
    fn upcoming_previews_in_order() {
        let s = CronSchedule::parse("0 * * * *", "UTC").expect("parse");
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 10, 15, 0)
            .single()
            .expect("t");
        let next = s.upcoming(t, 3);
        assert_eq!(
            next,
            vec![
                utc("2026-01-01T11:00:00Z"),
                utc("2026-01-01T12:00:00Z"),
                utc("2026-01-01T13:00:00Z")
            ]
        );
    }

    fn plan(policy: MissedPolicy) -> FirePlan {
        // Every minute; due at 10:00; the runtime comes back at 10:10:30 (10 minutes down).
        let s = CronSchedule::parse("* * * * *", "UTC").expect("parse");
        s.plan(
            utc("2026-01-01T10:00:00Z"),
            utc("2026-01-01T10:10:30Z"),
            TimeDelta::seconds(5),
            policy,
        )
    }

    #[test]
    fn after_downtime_skip_fires_nothing_and_moves_on() {
        let p = plan(MissedPolicy::Skip);
        assert!(p.fires.is_empty(), "{p:?}");
        assert_eq!(p.missed, 11, "10:00 through 10:10");
        assert_eq!(p.next, Some(utc("2026-01-01T10:11:00Z")));
    }

    #[test]
    fn after_downtime_once_fires_the_latest_missed_run() {
        let p = plan(MissedPolicy::Once);
        assert_eq!(
            p.fires,
            vec![Fire {
                scheduled_for: utc("2026-01-01T10:10:00Z"),
                missed: true
            }]
        );
        assert_eq!(p.next, Some(utc("2026-01-01T10:11:00Z")));
    }

    #[test]
    fn after_downtime_catch_up_fires_the_latest_n_oldest_first() {
        let p = plan(MissedPolicy::CatchUp(3));
        let times: Vec<_> = p.fires.iter().map(|f| f.scheduled_for).collect();
        assert_eq!(
            times,
            vec![
                utc("2026-01-01T10:08:00Z"),
                utc("2026-01-01T10:09:00Z"),
                utc("2026-01-01T10:10:00Z")
            ]
        );
        assert!(p.fires.iter().all(|f| f.missed));
        // Asking for more than were missed fires each missed run once.
        assert_eq!(plan(MissedPolicy::CatchUp(50)).fires.len(), 11);
    }

    #[test]
    fn an_on_time_run_fires_whatever_the_policy() {
        let s = CronSchedule::parse("* * * * * *", "UTC").expect("parse");
        // Due at :00, now :01.2 — slightly late, within grace: both seconds fire, nothing missed.
        let p = s.plan(
            utc("2026-01-01T10:00:00Z"),
            utc("2026-01-01T10:00:01.200Z"),
            TimeDelta::seconds(5),
            MissedPolicy::Skip,
        );
        assert_eq!(p.fires.len(), 2, "{p:?}");
        assert!(p.fires.iter().all(|f| !f.missed));
        assert_eq!(p.missed, 0);
        assert_eq!(p.next, Some(utc("2026-01-01T10:00:02Z")));
        // Not yet due: nothing fires and the due time stays.
        let p = s.plan(
            utc("2026-01-01T10:00:05Z"),
            utc("2026-01-01T10:00:01Z"),
            TimeDelta::seconds(5),
            MissedPolicy::Once,
        );
        assert!(p.fires.is_empty());
        assert_eq!(p.next, Some(utc("2026-01-01T10:00:05Z")));
    }

    #[test]
    fn missed_counting_is_bounded() {
        let s = CronSchedule::parse("* * * * * *", "UTC").expect("parse");
        // A month of a per-second schedule: counted up to the cap, the latest 2 fired.
        let p = s.plan(
            utc("2026-01-01T00:00:00Z"),
            utc("2026-02-01T00:00:00Z"),
            TimeDelta::seconds(5),
            MissedPolicy::CatchUp(2),
        );
        assert_eq!(p.missed, MISSED_COUNT_CAP);
        let missed: Vec<_> = p.fires.iter().filter(|f| f.missed).collect();
        assert_eq!(missed.len(), 2);
        assert_eq!(missed[1].scheduled_for, utc("2026-01-31T23:59:54Z"));
    }
}
