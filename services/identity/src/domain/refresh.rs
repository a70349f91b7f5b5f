//! What a presented refresh token leads to.

use time::OffsetDateTime;

/// The stored state of a refresh token.
#[derive(Debug, Clone, Copy)]
pub struct RefreshState {
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// Exchange it: mark it used, issue the next token of the family.
    Rotate,
    /// Spent before: someone replays it. Revoke the whole family.
    Reused,
    /// Revoked or expired: refuse, change nothing.
    Refused,
}

/// The rule: a token is good once, before it expires, unless its family was
/// revoked. A spent token presented again means it leaked (or its holder
/// races itself): the family goes, so neither party keeps a session.
pub fn judge_refresh(state: &RefreshState, now: OffsetDateTime) -> RefreshVerdict {
    if state.revoked_at.is_some() {
        RefreshVerdict::Refused
    } else if state.used_at.is_some() {
        RefreshVerdict::Reused
    } else if state.expires_at <= now {
        RefreshVerdict::Refused
    } else {
        RefreshVerdict::Rotate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn a_token_is_good_once_before_it_expires_unless_revoked() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let fresh = RefreshState { expires_at: now + Duration::days(1), used_at: None, revoked_at: None };
        assert_eq!(judge_refresh(&fresh, now), RefreshVerdict::Rotate);
        assert_eq!(judge_refresh(&RefreshState { used_at: Some(now), ..fresh }, now), RefreshVerdict::Reused);
        assert_eq!(judge_refresh(&RefreshState { revoked_at: Some(now), ..fresh }, now), RefreshVerdict::Refused);
        let revoked_and_used = RefreshState { revoked_at: Some(now), used_at: Some(now), ..fresh };
        assert_eq!(judge_refresh(&revoked_and_used, now), RefreshVerdict::Refused);
        assert_eq!(judge_refresh(&RefreshState { expires_at: now, ..fresh }, now), RefreshVerdict::Refused);
    }
}
