//! Settings of the transforms that are not per column: the email domain
//! and the date-shift window.

use serde::{Deserialize, Serialize};

/// Default domain of stand-in email addresses (RFC 2606: never resolves).
pub const DEFAULT_EMAIL_DOMAIN: &str = "example.invalid";
/// Default largest shift of `date_shift`, in days either way.
pub const DEFAULT_DATE_SHIFT_DAYS: u32 = 180;
/// The largest date-shift window accepted (100 years).
pub const MAX_DATE_SHIFT_DAYS: u32 = 36_525;

/// Transform settings shared by every column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Domain of stand-in email addresses.
    pub email_domain: String,
    /// `date_shift` moves a date by 1 to this many days, either way.
    pub date_shift_days: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            email_domain: DEFAULT_EMAIL_DOMAIN.to_owned(),
            date_shift_days: DEFAULT_DATE_SHIFT_DAYS,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Not a lower-case DNS name.
    #[error("email_domain {0:?} is not a lower-case domain name (labels of a-z, 0-9 and '-')")]
    EmailDomain(String),
    /// Zero or too large.
    #[error("date_shift_days must be between 1 and {MAX_DATE_SHIFT_DAYS}, not {0}")]
    DateShiftDays(u32),
}

impl Settings {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let d = &self.email_domain;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if d.len() > 200 || !d.split('.').all(label_ok) {
            return Err(SettingsError::EmailDomain(d.clone()));
        }
        if !(1..=MAX_DATE_SHIFT_DAYS).contains(&self.date_shift_days) {
            return Err(SettingsError::DateShiftDays(self.date_shift_days));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert_eq!(Settings::default().validate(), Ok(()));
        for bad in ["", "Example.com", "a..b", "-a.b", "a b"] {
            let s = Settings {
                email_domain: bad.into(),
                ..Settings::default()
            };
            assert!(s.validate().is_err(), "{bad:?}");
        }
        let s = Settings {
            date_shift_days: 0,
            ..Settings::default()
        };
        assert_eq!(s.validate(), Err(SettingsError::DateShiftDays(0)));
    }
}
