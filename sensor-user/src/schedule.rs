//! When the daemon's verification scan is due (PCI DSS 11.5.2: at least
//! weekly).
//!
//! A schedule is an interval (`weekly`, `daily`, `12h`, `3d`...) or a
//! five-field cron expression in local time (`0 3 * * 0`). The next scan is
//! counted from the last one recorded in the store, so a sensor restarted
//! every day still scans weekly, and one that was down when a scan was due
//! scans as soon as it starts. The decision takes "now" as an argument: the
//! daemon passes the system clock, tests pass whatever time they need.
use chrono::{DateTime, Local, Utc};
use std::str::FromStr;

/// How often the scheduled scan runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(std::time::Duration),
    Cron(Box<croner::Cron>),
    /// `off`: no scheduled scan (not PCI DSS 11.5.2 compliant on its own).
    Off,
}

impl Schedule {
    /// Parses `weekly`, `daily`, `hourly`, `off`, a duration (`36h`, `7d`,
    /// `90m`; at least one minute) or a five-field cron expression.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let s = s.trim();
        let hours = |h: u64| Ok(Schedule::Every(std::time::Duration::from_secs(h * 3600)));
        match s {
            "weekly" => return hours(7 * 24),
            "daily" => return hours(24),
            "hourly" => return hours(1),
            "off" | "never" => return Ok(Schedule::Off),
            _ => {}
        }
        if s.split_whitespace().count() == 5 {
            return croner::Cron::from_str(s)
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(|e| format!("invalid cron expression {s:?}: {e}"));
        }
        match humantime::parse_duration(s) {
            Ok(d) if d.as_secs() >= 1 => Ok(Schedule::Every(d)),
            Ok(_) => Err(format!("scan interval {s:?} is too short: use at least 1s")),
            Err(e) => Err(format!(
                "invalid scan schedule {s:?} ({e}): use weekly, daily, a duration such as 3d or 12h, \
                 a cron expression such as \"0 3 * * 0\", or off"
            )),
        }
    }

    /// When the scan after one that started at `last` is due. `None` when
    /// there is no schedule (or a cron expression that never fires again).
    pub fn next_after(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| last + d),
            Schedule::Cron(c) => c
                .find_next_occurrence(&last.with_timezone(&Local), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::Off => None,
        }
    }

    /// When the next scheduled scan is due, given when the last scheduled scan
    /// (or the baseline, if none ran yet) started. Without either, one
    /// schedule period from `now`.
    pub fn due(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(last.unwrap_or(now))
    }
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule::parse("weekly").expect("weekly is a schedule")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_count_from_the_last_scan_so_restarts_do_not_postpone_them() {
        let weekly = Schedule::parse("weekly").unwrap();
        let last = t("2026-11-01T03:00:00Z");
        // A sensor restarted every day still scans a week after the last scan.
        for day in 1..7 {
            let now = last + chrono::Duration::days(day);
            assert!(weekly.due(Some(last), now).unwrap() > now, "day {day}");
        }
        let now = last + chrono::Duration::days(8);
        assert_eq!(
            weekly.due(Some(last), now).unwrap(),
            t("2026-11-08T03:00:00Z")
        );
        assert!(
            weekly.due(Some(last), now).unwrap() <= now,
            "overdue: runs at once"
        );
        // No scan yet: one period from now.
        assert_eq!(weekly.due(None, last).unwrap(), t("2026-11-08T03:00:00Z"));
        let every = Schedule::parse("36h").unwrap();
        assert_eq!(
            every.due(Some(last), last).unwrap(),
            t("2026-11-02T15:00:00Z")
        );
        assert!(Schedule::parse("off")
            .unwrap()
            .due(Some(last), last)
            .is_none());
    }

    #[test]
    fn cron_expressions_fire_at_their_next_local_time() {
        let sunday_3am = Schedule::parse("0 3 * * 0").unwrap();
        let last = Local
            .with_ymd_and_hms(2026, 11, 22, 3, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let next = sunday_3am.next_after(last).unwrap().with_timezone(&Local);
        assert_eq!(
            next.naive_local(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
                .unwrap()
                .and_hms_opt(3, 0, 0)
                .unwrap()
        );
    }

    #[test]
    fn bad_schedules_say_what_is_accepted() {
        for bad in ["fortnightly", "0 99 * * *", "0s"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(Schedule::parse("fortnightly")
            .unwrap_err()
            .contains("cron expression"));
    }
}
