//! When a campaign may send: not before its start, and only inside its send window (weekdays and
//! a daily time range in the campaign's timezone). Both answer the same question: "open now, or
//! when does it open?", so the dispatcher sleeps as a scheduled job instead of polling.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    validation::Problems,
};

/// Days are written the way people write them on a schedule: MON..SUN.
pub const DAYS: [(&str, Weekday); 7] = [
    ("MON", Weekday::Mon),
    ("TUE", Weekday::Tue),
    ("WED", Weekday::Wed),
    ("THU", Weekday::Thu),
    ("FRI", Weekday::Fri),
    ("SAT", Weekday::Sat),
    ("SUN", Weekday::Sun),
];

/// The stored form: `{"days": ["MON", ...], "startTime": "09:00", "endTime": "18:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendWindowSpec {
    pub days: Vec<String>,
    pub start_time: String,
    pub end_time: String,
}

/// A parsed send window: sending is allowed on `days` from `start` (inclusive) to `end`
/// (exclusive), local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    days: Vec<Weekday>,
    start: NaiveTime,
    end: NaiveTime,
}

impl SendWindow {
    /// Checks a window as a user wrote it, reporting each problem at `sendWindow.<field>`.
    pub fn parse(spec: &SendWindowSpec) -> Result<Self> {
        let mut problems = Problems::default();
        let mut days = Vec::new();
        if spec.days.is_empty() {
            problems.add("sendWindow.days", "name at least one day (MON..SUN)");
        }
        for day in &spec.days {
            match DAYS.iter().find(|(name, _)| name.eq_ignore_ascii_case(day)) {
                Some((_, weekday)) if !days.contains(weekday) => days.push(*weekday),
                Some(_) => {}
                None => problems.add("sendWindow.days", format!("{day:?} is not one of MON..SUN")),
            }
        }
        let time = |field: &str, text: &str, problems: &mut Problems| {
            let parsed = NaiveTime::parse_from_str(text, "%H:%M").ok();
            if parsed.is_none() {
                problems.add(
                    format!("sendWindow.{field}"),
                    format!("{text:?} is not a time of day as HH:MM (24-hour)"),
                );
            }
            parsed
        };
        let start = time("startTime", &spec.start_time, &mut problems);
        let end = time("endTime", &spec.end_time, &mut problems);
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            problems.add(
                "sendWindow.endTime",
                "must be after startTime (a window ends on the day it starts)",
            );
        }
        problems.into_result()?;
        Ok(Self {
            days,
            start: start.expect("checked"),
            end: end.expect("checked"),
        })
    }

    /// `None` when `now` is inside the window, else the next moment it opens.
    pub fn next_open(&self, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local_today = now.with_timezone(&zone).date_naive();
        // Eight days reach the same weekday next week, whatever today is.
        for offset in 0..8 {
            let day = local_today + Duration::days(offset);
            if !self.days.contains(&day.weekday()) {
                continue;
            }
            let opens = at(zone, day, self.start);
            let closes = at(zone, day, self.end);
            if now < opens {
                return Some(opens);
            }
            if now < closes {
                return None;
            }
        }
        unreachable!("a window with at least one day opens within eight days")
    }
}

/// The instant a local date and time happen in `zone`. A time skipped by a DST change is taken
/// an hour later; a repeated one, the first time it happens.
fn at(zone: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .expect("an hour after a DST gap exists")
        .with_timezone(&Utc)
}

/// An IANA timezone name, or VALIDATION_FAILED at `timezone`.
pub fn parse_zone(name: &str) -> Result<Tz> {
    Tz::from_str(name).map_err(|_| {
        Error::field(
            "timezone",
            format!("{name:?} is not an IANA timezone such as \"Europe/Madrid\""),
        )
    })
}

/// When a campaign may next send: `None` if now, else when and why not before.
pub fn next_send_time(
    start_at: Option<DateTime<Utc>>,
    window: Option<&SendWindow>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, &'static str)> {
    let earliest = start_at.filter(|s| *s > now);
    let from = earliest.unwrap_or(now);
    match window.and_then(|w| w.next_open(zone, from)) {
        Some(opens) => Some((opens, "outside the send window")),
        None => earliest.map(|at| (at, "waiting for its start time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], start: &str, end: &str) -> SendWindow {
        SendWindow::parse(&SendWindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start_time: start.into(),
            end_time: end.into(),
        })
        .unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn open_inside_and_next_opening_outside() {
        let weekdays = window(&["MON", "TUE", "WED", "THU", "FRI"], "09:00", "18:00");
        // 2026-11-24 is a Tuesday.
        assert_eq!(
            weekdays.next_open(Tz::UTC, utc("2026-11-24T10:00:00Z")),
            None
        );
        assert_eq!(
            weekdays.next_open(Tz::UTC, utc("2026-11-24T07:00:00Z")),
            Some(utc("2026-11-24T09:00:00Z"))
        );
        assert_eq!(
            weekdays.next_open(Tz::UTC, utc("2026-11-24T18:00:00Z")),
            Some(utc("2026-11-25T09:00:00Z"))
        );
        // Friday evening waits for Monday.
        assert_eq!(
            weekdays.next_open(Tz::UTC, utc("2026-11-27T19:00:00Z")),
            Some(utc("2026-11-30T09:00:00Z"))
        );
    }

    #[test]
    fn the_window_is_in_the_campaigns_timezone() {
        let mornings = window(&["TUE"], "09:00", "12:00");
        let madrid = parse_zone("Europe/Madrid").unwrap();
        // 08:30 UTC is 09:30 in Madrid (CET, UTC+1).
        assert_eq!(
            mornings.next_open(madrid, utc("2026-11-24T08:30:00Z")),
            None
        );
        assert_eq!(
            mornings.next_open(madrid, utc("2026-11-24T07:30:00Z")),
            Some(utc("2026-11-24T08:00:00Z"))
        );
        // Only Tuesdays: after Tuesday's window, next Tuesday.
        assert_eq!(
            mornings.next_open(madrid, utc("2026-11-24T11:00:00Z")),
            Some(utc("2026-12-01T08:00:00Z"))
        );
    }

    #[test]
    fn a_start_time_and_a_window_combine() {
        let weekdays = window(&["MON", "TUE", "WED", "THU", "FRI"], "09:00", "18:00");
        let now = utc("2026-11-24T10:00:00Z");
        assert_eq!(next_send_time(None, Some(&weekdays), Tz::UTC, now), None);
        assert_eq!(
            next_send_time(Some(utc("2026-11-24T12:00:00Z")), None, Tz::UTC, now),
            Some((utc("2026-11-24T12:00:00Z"), "waiting for its start time"))
        );
        // Starting at 20:00 lands outside the window: the next morning.
        assert_eq!(
            next_send_time(
                Some(utc("2026-11-24T20:00:00Z")),
                Some(&weekdays),
                Tz::UTC,
                now
            ),
            Some((utc("2026-11-25T09:00:00Z"), "outside the send window"))
        );
        assert_eq!(
            next_send_time(Some(utc("2026-11-24T09:00:00Z")), None, Tz::UTC, now),
            None
        );
    }

    #[test]
    fn bad_windows_are_reported_by_field() {
        let problems = |days: &[&str], start: &str, end: &str| {
            let spec = SendWindowSpec {
                days: days.iter().map(|d| d.to_string()).collect(),
                start_time: start.into(),
                end_time: end.into(),
            };
            match SendWindow::parse(&spec) {
                Err(Error::Validation(fields)) => {
                    fields.into_iter().map(|f| f.field).collect::<Vec<_>>()
                }
                other => panic!("expected a validation error, got {other:?}"),
            }
        };
        assert_eq!(problems(&[], "09:00", "18:00"), ["sendWindow.days"]);
        assert_eq!(problems(&["FUNDAY"], "09:00", "18:00"), ["sendWindow.days"]);
        assert_eq!(problems(&["MON"], "9am", "18:00"), ["sendWindow.startTime"]);
        assert_eq!(problems(&["MON"], "18:00", "09:00"), ["sendWindow.endTime"]);
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
