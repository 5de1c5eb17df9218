//! Reading rows into structs whose fields are named like the columns selected, so that each
//! query states its columns once (in its SQL) and a reordered SELECT cannot swap two fields of
//! the same type.

use rusqlite::{Connection, Params, Row};

use super::StoreError;

/// A struct built from a row by column name; implemented with [`from_row!`].
pub trait FromRow: Sized {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self>;
}

/// `from_row!(Type { field, ... })` implements [`FromRow`] for `Type`, reading each field from
/// the column of the same name (alias it with `AS` where the column is named otherwise).
macro_rules! from_row {
    ($type:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::store::rows::FromRow for $type {
            fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(Self { $($field: row.get(stringify!($field))?),+ })
            }
        }
    };
}
pub(crate) use from_row;

/// Every row `sql` selects, in its order.
pub fn all<T: FromRow>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, T::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Hands every row `sql` selects to `each`, in order, one at a time.
pub fn for_each(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut each: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    while let Some(row) = rows.next()? {
        each(row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Pair {
        left: i64,
        right: Option<String>,
    }
    from_row!(Pair { left, right });

    #[test]
    fn fields_are_read_by_column_name_whatever_the_select_order() {
        let conn = Connection::open_in_memory().unwrap();
        let pairs: Vec<Pair> = all(&conn, "SELECT 'r' AS right, 1 AS left", []).unwrap();
        assert_eq!(
            pairs,
            [Pair {
                left: 1,
                right: Some("r".into())
            }]
        );
        let missing: Result<Vec<Pair>, _> = all(&conn, "SELECT 1 AS left", []);
        assert!(
            missing.is_err(),
            "a column missing from the select is an error"
        );
    }
}
