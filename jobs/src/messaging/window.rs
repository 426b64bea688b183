//! WhatsApp's customer service window: free-form messages may be sent for 24 hours after the
//! customer's last message to that sender; outside it only approved templates go.

use chrono::{DateTime, Duration, Utc};

pub const WINDOW: Duration = Duration::hours(24);

/// Whether the window is open, and until when, as `sessionStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStatus {
    pub is_open: bool,
    pub last_customer_message_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Whole minutes left (rounded down); 0 when closed.
    pub minutes_remaining: i64,
}

impl SessionStatus {
    pub fn at(last_customer_message_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let expires_at = last_customer_message_at.map(|t| t + WINDOW);
        let is_open = expires_at.is_some_and(|e| e > now);
        Self {
            is_open,
            last_customer_message_at,
            expires_at,
            minutes_remaining: expires_at
                .filter(|_| is_open)
                .map_or(0, |e| (e - now).num_minutes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_for_exactly_24_hours() {
        let now = Utc::now();
        let fresh = SessionStatus::at(Some(now - Duration::minutes(90)), now);
        assert!(fresh.is_open);
        assert_eq!(fresh.minutes_remaining, 22 * 60 + 30);
        assert_eq!(
            fresh.expires_at,
            Some(now + Duration::hours(22) + Duration::minutes(30))
        );
        let stale = SessionStatus::at(Some(now - Duration::hours(24)), now);
        assert!(!stale.is_open);
        assert_eq!(stale.minutes_remaining, 0);
        let never = SessionStatus::at(None, now);
        assert!(!never.is_open && never.expires_at.is_none());
    }
}
