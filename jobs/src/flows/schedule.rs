//! Schedule triggers: a crontab line (five fields, or six with seconds first) in a time zone.
//! croner parses and steps the line; chrono-tz knows the zones' daylight saving rules.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    pub fn parse(line: &str, timezone: Option<&str>) -> Result<Self, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(line)
            .map_err(|e| format!("cron {line:?} is not a crontab line: {e}"))?;
        let zone = match timezone {
            Some(name) => Tz::from_str(name)
                .map_err(|_| format!("timezone {name:?} is not an IANA zone like Europe/Paris"))?,
            None => Tz::UTC,
        };
        Ok(Self { cron, zone })
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_in_a_zone() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        let after = DateTime::parse_from_rfc3339("2026-07-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 09:00 in Paris (summer time) is 07:00 UTC: the next is the following day.
        assert_eq!(
            s.next_after(after).unwrap().to_rfc3339(),
            "2026-07-02T07:00:00+00:00"
        );
        assert!(Schedule::parse("0 9 * *", None).is_err());
        assert!(Schedule::parse("0 9 * * *", Some("Mars/Olympus")).is_err());
        let every_two = Schedule::parse("*/2 * * * * *", None).unwrap();
        assert_eq!(
            every_two.next_after(after).unwrap().to_rfc3339(),
            "2026-07-01T08:00:02+00:00"
        );
    }
}
