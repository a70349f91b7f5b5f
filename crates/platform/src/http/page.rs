//! Keyset pagination over UUIDv7 ids (which sort by creation time).
//!
//! A list endpoint takes `limit` and `cursor` (the last id of the previous
//! page), its repository fetches `limit + 1` rows newest first after the
//! cursor, and [`cut`] keeps `limit` of them and says where the next page
//! starts. No offsets: a page costs the same wherever it is.

use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// The page size asked for, within 1..=[`MAX_LIMIT`].
pub fn limit(asked: Option<i64>) -> i64 {
    asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// Keeps the first `limit` of `rows` (fetched with `limit + 1`) and returns
/// the cursor of the next page, `None` on the last page.
pub fn cut<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<Uuid>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(id);
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_kept_within_bounds() {
        assert_eq!(limit(None), DEFAULT_LIMIT);
        assert_eq!(limit(Some(0)), 1);
        assert_eq!(limit(Some(1000)), MAX_LIMIT);
    }

    #[test]
    fn a_page_with_one_row_more_has_a_next_cursor() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        assert_eq!(cut(ids.clone(), 2, |u| *u), (ids[..2].to_vec(), Some(ids[1])));
        assert_eq!(cut(ids[..2].to_vec(), 2, |u| *u), (ids[..2].to_vec(), None));
    }
}
