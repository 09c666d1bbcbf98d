//! Times as the API shows them.

use time::{OffsetDateTime, UtcOffset};

/// A time as the API shows it (a key's, a change's): RFC 3339 in UTC, to the millisecond (cut, not
/// rounded), e.g. `2026-01-31T09:05:07.042Z`. Written out rather than with `Rfc3339`, which
/// would drop the fraction of a whole second and print up to nine digits of any other.
pub fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_shown_in_utc_to_the_millisecond_cut_not_rounded() {
        let at = time::Date::from_calendar_date(2026, time::Month::January, 31)
            .unwrap()
            .with_hms_micro(9, 5, 7, 42_999)
            .unwrap()
            .assume_utc();
        assert_eq!(timestamp(at), "2026-01-31T09:05:07.042Z");
        let whole = at.replace_microsecond(0).unwrap();
        assert_eq!(timestamp(whole), "2026-01-31T09:05:07.000Z");
        let elsewhere = at.to_offset(UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(timestamp(elsewhere), "2026-01-31T09:05:07.042Z");
    }
}
