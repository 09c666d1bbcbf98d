//! Times as the API shows them.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::error::ApiError;
use crate::policy::UnixMillis;

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

/// An instant of the policy's as the API shows it.
pub fn instant(at: UnixMillis) -> String {
    let nanos = i128::from(at.0) * 1_000_000;
    timestamp(
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    )
}

/// An RFC 3339 date and time a request gives (`2026-12-31T23:59:59Z`, any offset, any
/// fraction of a second), as an instant of the policy's, to the millisecond (cut).
pub fn parse_instant(field: &str, value: &str) -> Result<UnixMillis, ApiError> {
    let at = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        ApiError::InvalidRequest(format!(
            "`{field}` must be an RFC 3339 date and time, such as 2026-12-31T23:59:59Z"
        ))
    })?;
    let millis = at.unix_timestamp_nanos().div_euclid(1_000_000);
    Ok(UnixMillis(i64::try_from(millis).map_err(|_| {
        ApiError::InvalidRequest(format!("`{field}` is out of range"))
    })?))
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

    #[test]
    fn an_instant_given_in_any_offset_and_precision_is_kept_to_the_millisecond() {
        let parsed = parse_instant("expires_at", "2026-01-31T11:05:07.042999+02:00").unwrap();
        assert_eq!(instant(parsed), "2026-01-31T09:05:07.042Z");
        assert_eq!(
            parse_instant("expires_at", "1970-01-01T00:00:00Z").unwrap(),
            UnixMillis(0)
        );
        assert_eq!(
            parse_instant("expires_at", "1969-12-31T23:59:59.9995Z").unwrap(),
            UnixMillis(-1),
            "cut towards the past, before the epoch too"
        );
        for bad in [
            "2026-01-31",
            "2026-01-31T09:05:07",
            "tomorrow",
            "",
            "2026-13-01T00:00:00Z",
        ] {
            let Err(ApiError::InvalidRequest(message)) = parse_instant("expires_at", bad) else {
                panic!("{bad:?} was taken");
            };
            assert!(message.contains("`expires_at`"), "{message}");
        }
    }
}
