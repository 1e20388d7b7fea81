//! Reading rows by column name, so a query's column list and the code that decodes it cannot
//! drift apart by position. A query that joins tables whose columns share names (`id`,
//! `tenant_id`) selects each table's columns under a prefix ([`aliased`]: `e.id AS e_id`) and
//! reads them back through [`Columns::prefixed`]; `AS` aliases mean the same on SQLite and
//! PostgreSQL, and every name is lower case, so PostgreSQL's folding changes nothing.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};
use uuid::Uuid;

use super::tenants::parse_uuid;
use super::{StoreResult, from_ms};

/// `a, b` → `t.a AS t_a, t.b AS t_b`: `columns` of table alias `table`, named for
/// [`Columns::prefixed`].
pub(crate) fn aliased(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| {
            let c = c.trim();
            format!("{table}.{c} AS {table}_{c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row's columns, by name.
#[derive(Clone, Copy)]
pub(crate) struct Columns<'r> {
    row: &'r AnyRow,
    /// The table alias of [`aliased`] columns; empty for plain names.
    prefix: &'static str,
}

impl<'r> Columns<'r> {
    pub(crate) fn of(row: &'r AnyRow) -> Self {
        Self { row, prefix: "" }
    }

    /// The columns of table alias `table`, selected with [`aliased`].
    pub(crate) fn prefixed(row: &'r AnyRow, table: &'static str) -> Self {
        Self { row, prefix: table }
    }

    pub(crate) fn get<T>(&self, name: &str) -> StoreResult<T>
    where
        T: Decode<'r, Any> + Type<Any>,
    {
        if self.prefix.is_empty() {
            Ok(self.row.try_get(name)?)
        } else {
            Ok(self
                .row
                .try_get(format!("{}_{name}", self.prefix).as_str())?)
        }
    }

    /// A UUID stored as text.
    pub(crate) fn uuid(&self, name: &str) -> StoreResult<Uuid> {
        parse_uuid(&self.get::<String>(name)?)
    }

    pub(crate) fn opt_uuid(&self, name: &str) -> StoreResult<Option<Uuid>> {
        self.get::<Option<String>>(name)?
            .as_deref()
            .map(parse_uuid)
            .transpose()
    }

    /// A time stored as Unix milliseconds.
    pub(crate) fn time(&self, name: &str) -> StoreResult<DateTime<Utc>> {
        Ok(from_ms(self.get(name)?))
    }

    pub(crate) fn opt_time(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.get::<Option<i64>>(name)?.map(from_ms))
    }

    /// A boolean stored as an integer (0 or 1), the form both databases share.
    pub(crate) fn flag(&self, name: &str) -> StoreResult<bool> {
        Ok(self.get::<i64>(name)? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliased_columns_carry_their_table() {
        assert_eq!(
            aliased("ev", "id, tenant_id"),
            "ev.id AS ev_id, ev.tenant_id AS ev_tenant_id"
        );
    }
}
