//! [`Row`] (binary, from the extended protocol) and [`SimpleQueryRow`] (text, from the
//! simple protocol). Both keep the server's frame and decode values on demand.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::protocol::backend::DataRow;
use crate::statement::Column;
use crate::types::FromSql;

mod sealed {
    pub trait Sealed {}
}

/// A column index: a position (`usize`) or a name (`&str`).
pub trait RowIndex: sealed::Sealed + fmt::Display {
    /// The position of this column among `columns`.
    fn index(&self, columns: &[Column]) -> Option<usize>;
}

impl sealed::Sealed for usize {}
impl RowIndex for usize {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl sealed::Sealed for str {}
impl RowIndex for str {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        columns.iter().position(|c| c.name() == self)
    }
}

impl<T: RowIndex + ?Sized> sealed::Sealed for &T {}
impl<T: RowIndex + ?Sized> RowIndex for &T {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        T::index(self, columns)
    }
}

impl sealed::Sealed for String {}
impl RowIndex for String {
    fn index(&self, columns: &[Column]) -> Option<usize> {
        self.as_str().index(columns)
    }
}

/// One row of a query result.
#[derive(Clone)]
pub struct Row {
    columns: Arc<[Column]>,
    data: DataRow,
}

impl Row {
    pub(crate) fn new(columns: Arc<[Column]>, data: DataRow) -> Row {
        Row { columns, data }
    }

    /// The same values under `columns` (the catalogue's resolved types).
    pub(crate) fn with_columns(self, columns: Arc<[Column]>) -> Row {
        Row {
            columns,
            data: self.data,
        }
    }

    /// The row's columns, shared.
    pub(crate) fn columns_arc(&self) -> &Arc<[Column]> {
        &self.columns
    }

    /// The row's columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The number of values in the row.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value of a column, decoded into `T`.
    ///
    /// # Panics
    /// When [`Row::try_get`] would fail: no such column, or a value that does not fit `T`.
    /// Use `try_get` to handle those as errors.
    #[track_caller]
    pub fn get<'a, I, T>(&'a self, idx: I) -> T
    where
        I: RowIndex,
        T: FromSql<'a>,
    {
        match self.try_get(idx) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// The value of a column, decoded into `T`.
    ///
    /// # Errors
    /// [`ErrorKind::ColumnNotFound`] for an unknown name or index; [`ErrorKind::Decode`]
    /// naming the column, its PostgreSQL type and the Rust type when the value does not
    /// fit (including NULL into a non-`Option` type).
    pub fn try_get<'a, I, T>(&'a self, idx: I) -> Result<T, Error>
    where
        I: RowIndex,
        T: FromSql<'a>,
    {
        let i = idx.index(&self.columns).ok_or_else(|| {
            Error::new(
                ErrorKind::ColumnNotFound,
                format!("no column {idx} in this row"),
            )
        })?;
        let column = &self.columns[i];
        let ty = column.type_().base();
        let decode_error = |e: crate::types::BoxError| {
            let rust = std::any::type_name::<T>();
            let msg = format!(
                "column {:?} (index {i}) of type {ty} into Rust type {rust}",
                column.name()
            );
            Error::with_source(ErrorKind::Decode, msg, e)
        };
        if !T::accepts(ty) {
            return Err(decode_error(crate::types::type_error::<T>(
                ty,
                T::mismatch(ty),
            )));
        }
        T::from_sql_nullable(ty, self.data.value(i)).map_err(decode_error)
    }

    /// The raw binary value of a column (`None` for NULL or an unknown index).
    pub fn raw(&self, idx: usize) -> Option<&[u8]> {
        self.data.value(idx)
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_map();
        for (i, c) in self.columns.iter().enumerate() {
            d.entry(&c.name(), &self.data.value(i).map(<[u8]>::len));
        }
        d.finish()
    }
}

/// A Rust value built from a whole row: tuples (by position, up to 16 columns) here,
/// structs by column name with `#[derive(FromRow)]` (feature `derive`).
pub trait FromRow: Sized {
    /// Builds the value from `row`.
    ///
    /// # Errors
    /// As [`Row::try_get`] for each column; a tuple whose length is not the row's is
    /// [`ErrorKind::Decode`].
    fn from_row(row: &Row) -> Result<Self, Error>;
}

impl Row {
    /// The row as a `T`: a tuple by position, or a struct that derives [`FromRow`].
    ///
    /// # Errors
    /// As [`FromRow::from_row`].
    pub fn to<T: FromRow>(&self) -> Result<T, Error> {
        T::from_row(self)
    }
}

/// Implements FromRow for a tuple of FromSqlOwned types, one per column.
macro_rules! tuple_from_row {
    ($($len:literal => ($($t:ident $i:tt),+);)*) => {$(
        impl<$($t: crate::types::FromSqlOwned),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self, Error> {
                if row.len() != $len {
                    return Err(Error::new(
                        ErrorKind::Decode,
                        format!("a row of {} columns into a tuple of {}", row.len(), $len),
                    ));
                }
                Ok(($(row.try_get::<usize, $t>($i)?,)+))
            }
        }
    )*};
}

tuple_from_row! {
    1 => (A 0);
    2 => (A 0, B 1);
    3 => (A 0, B 1, C 2);
    4 => (A 0, B 1, C 2, D 3);
    5 => (A 0, B 1, C 2, D 3, E 4);
    6 => (A 0, B 1, C 2, D 3, E 4, F 5);
    7 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6);
    8 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
    9 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
    10 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
    11 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
    12 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
    13 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
    14 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
    15 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
    16 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);
}

/// A column of a simple-protocol row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleColumn {
    name: String,
}

impl SimpleColumn {
    pub(crate) fn new(name: String) -> SimpleColumn {
        SimpleColumn { name }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One row from [`crate::Connection::simple_query`]: every value is text.
#[derive(Clone)]
pub struct SimpleQueryRow {
    columns: Arc<[SimpleColumn]>,
    data: DataRow,
}

impl SimpleQueryRow {
    pub(crate) fn new(columns: Arc<[SimpleColumn]>, data: DataRow) -> SimpleQueryRow {
        SimpleQueryRow { columns, data }
    }

    /// The row's columns.
    pub fn columns(&self) -> &[SimpleColumn] {
        &self.columns
    }

    /// The number of values in the row.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The text of a column by position or name; `None` for NULL.
    ///
    /// # Panics
    /// When [`SimpleQueryRow::try_get`] would fail.
    #[track_caller]
    pub fn get(&self, idx: impl SimpleRowIndex) -> Option<&str> {
        match self.try_get(idx) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// The text of a column by position or name; `Ok(None)` for NULL.
    ///
    /// # Errors
    /// [`ErrorKind::ColumnNotFound`] for an unknown column, [`ErrorKind::Decode`] for a
    /// value that is not UTF-8.
    pub fn try_get(&self, idx: impl SimpleRowIndex) -> Result<Option<&str>, Error> {
        let i = idx.simple_index(&self.columns).ok_or_else(|| {
            Error::new(
                ErrorKind::ColumnNotFound,
                format!("no column {idx} in this row"),
            )
        })?;
        let Some(raw) = self.data.value(i) else {
            return Ok(None);
        };
        std::str::from_utf8(raw).map(Some).map_err(|e| {
            Error::with_source(ErrorKind::Decode, format!("column {i} is not UTF-8"), e)
        })
    }
}

impl fmt::Debug for SimpleQueryRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_map();
        for (i, c) in self.columns.iter().enumerate() {
            d.entry(&c.name(), &self.data.value(i).map(String::from_utf8_lossy));
        }
        d.finish()
    }
}

/// A column index for simple-protocol rows: a position or a name.
pub trait SimpleRowIndex: sealed::Sealed + fmt::Display {
    /// The position of this column among `columns`.
    fn simple_index(&self, columns: &[SimpleColumn]) -> Option<usize>;
}

impl SimpleRowIndex for usize {
    fn simple_index(&self, columns: &[SimpleColumn]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl SimpleRowIndex for &str {
    fn simple_index(&self, columns: &[SimpleColumn]) -> Option<usize> {
        columns.iter().position(|c| c.name() == *self)
    }
}

/// One result item of [`crate::Connection::simple_query`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SimpleQueryMessage {
    /// A row.
    Row(SimpleQueryRow),
    /// A statement finished, having affected this many rows.
    CommandComplete(u64),
}
