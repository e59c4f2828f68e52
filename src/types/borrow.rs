//! [`BorrowToSql`]: what an iterator of parameters may yield.

use super::ToSql;

mod sealed {
    pub trait Sealed {}
}

/// A parameter as an iterator yields it: a value, a reference to one, a `&dyn ToSql` or
/// a boxed one (tokio-postgres's `BorrowToSql`), for the calls that take any iterator of
/// parameters ([`crate::Connection::query_raw`]).
///
/// ```no_run
/// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
/// use futures::TryStreamExt;
/// let ids: Vec<i64> = vec![1, 2];
/// let rows: Vec<pgkeel::Row> = conn
///     .query_raw("SELECT $1::int8 + $2::int8", ids)
///     .await?
///     .try_collect()
///     .await?;
/// # Ok(()) }
/// ```
pub trait BorrowToSql: sealed::Sealed {
    /// The parameter as a `&dyn ToSql`.
    fn borrow_to_sql(&self) -> &(dyn ToSql + Sync);
}

impl<T: ToSql> sealed::Sealed for T {}
impl<T: ToSql> BorrowToSql for T {
    fn borrow_to_sql(&self) -> &(dyn ToSql + Sync) {
        self
    }
}

impl sealed::Sealed for &(dyn ToSql + Sync) {}
impl BorrowToSql for &(dyn ToSql + Sync) {
    fn borrow_to_sql(&self) -> &(dyn ToSql + Sync) {
        *self
    }
}

impl sealed::Sealed for &&(dyn ToSql + Sync) {}
impl BorrowToSql for &&(dyn ToSql + Sync) {
    fn borrow_to_sql(&self) -> &(dyn ToSql + Sync) {
        **self
    }
}

impl sealed::Sealed for Box<dyn ToSql + Sync + '_> {}
impl BorrowToSql for Box<dyn ToSql + Sync + '_> {
    fn borrow_to_sql(&self) -> &(dyn ToSql + Sync) {
        self.as_ref()
    }
}

impl sealed::Sealed for Box<dyn ToSql + Send + Sync + '_> {}
impl BorrowToSql for Box<dyn ToSql + Send + Sync + '_> {
    fn borrow_to_sql(&self) -> &(dyn ToSql + Sync) {
        self.as_ref()
    }
}

/// Collects an iterator's parameters so they can be borrowed as a [`crate::Params`]
/// slice (`refs` of `owned`).
pub(crate) fn collect_params<I>(params: I) -> Vec<I::Item>
where
    I: IntoIterator,
    I::Item: BorrowToSql,
{
    params.into_iter().collect()
}

/// The parameters as the slice every query path takes.
pub(crate) fn as_refs<P: BorrowToSql>(owned: &[P]) -> Vec<&(dyn ToSql + Sync)> {
    owned.iter().map(BorrowToSql::borrow_to_sql).collect()
}
