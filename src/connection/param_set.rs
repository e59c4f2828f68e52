//! [`ParamSet`]: one set of parameters for `execute_many`, in whatever shape the caller
//! has it: a tuple of values, an array, a `Vec`, or a slice of `&dyn ToSql`.

use crate::types::ToSql;

/// One set of parameters for [`execute_many`](crate::Connection::execute_many).
///
/// Implemented for tuples of up to 16 values (`(id, &name)`), arrays (`[a, b]`),
/// `Vec<T>`, slices of `&(dyn ToSql + Sync)` (the form [`Params`](crate::Params) has),
/// and references to any of these, so rows can come straight from an iterator
/// (`people.iter().map(|p| (p.id, &p.name))`) without building slices up front.
///
/// ```no_run
/// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
/// let people = vec![(1i64, "Ada".to_owned()), (2, "Grace".to_owned())];
/// let n = conn
///     .execute_many(
///         "INSERT INTO people (id, name) VALUES ($1, $2)",
///         people.iter().map(|(id, name)| (id, name)),
///     )
///     .await?;
/// assert_eq!(n, 2);
/// # Ok(()) }
/// ```
pub trait ParamSet {
    /// What [`ParamSet::refs`] lends: references to each parameter, in order.
    type Refs<'a>: AsRef<[&'a (dyn ToSql + Sync)]>
    where
        Self: 'a;

    /// References to the parameters, in order (`$1` first).
    fn refs(&self) -> Self::Refs<'_>;
}

/// Implements [`ParamSet`] for a container of `&dyn ToSql` that derefs to a slice: it
/// lends that slice as it is.
macro_rules! dyn_slice_param_set {
    ($([$($gen:tt)*] $ty:ty),+ $(,)?) => {$(
        impl<'s, 'd, $($gen)*> ParamSet for $ty {
            type Refs<'a>
                = &'a [&'a (dyn ToSql + Sync)]
            where
                Self: 'a;

            fn refs(&self) -> Self::Refs<'_> {
                self
            }
        }
    )+};
}

dyn_slice_param_set!(
    [] [&'s (dyn ToSql + Sync + 'd)],
    [] Vec<&'s (dyn ToSql + Sync + 'd)>,
    [const N: usize] [&'s (dyn ToSql + Sync + 'd); N],
);

impl<T: ToSql + Sync, const N: usize> ParamSet for [T; N] {
    type Refs<'a>
        = [&'a (dyn ToSql + Sync); N]
    where
        Self: 'a;

    fn refs(&self) -> Self::Refs<'_> {
        std::array::from_fn(|i| &self[i] as &(dyn ToSql + Sync))
    }
}

impl<T: ToSql + Sync> ParamSet for Vec<T> {
    type Refs<'a>
        = Vec<&'a (dyn ToSql + Sync)>
    where
        Self: 'a;

    fn refs(&self) -> Self::Refs<'_> {
        self.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
    }
}

impl<P: ParamSet + ?Sized> ParamSet for &P {
    type Refs<'a>
        = P::Refs<'a>
    where
        Self: 'a;

    fn refs(&self) -> Self::Refs<'_> {
        (**self).refs()
    }
}

impl ParamSet for () {
    type Refs<'a> = [&'a (dyn ToSql + Sync); 0];

    fn refs(&self) -> Self::Refs<'_> {
        []
    }
}

/// Implements [`ParamSet`] for a tuple of the given arity.
macro_rules! tuple_param_set {
    ($n:literal: $($t:ident $i:tt),+) => {
        impl<$($t: ToSql + Sync),+> ParamSet for ($($t,)+) {
            type Refs<'a>
                = [&'a (dyn ToSql + Sync); $n]
            where
                Self: 'a;

            fn refs(&self) -> Self::Refs<'_> {
                [$(&self.$i as &(dyn ToSql + Sync)),+]
            }
        }
    };
}

tuple_param_set!(1: A 0);
tuple_param_set!(2: A 0, B 1);
tuple_param_set!(3: A 0, B 1, C 2);
tuple_param_set!(4: A 0, B 1, C 2, D 3);
tuple_param_set!(5: A 0, B 1, C 2, D 3, E 4);
tuple_param_set!(6: A 0, B 1, C 2, D 3, E 4, F 5);
tuple_param_set!(7: A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_param_set!(8: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_param_set!(9: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_param_set!(10: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_param_set!(11: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_param_set!(12: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_param_set!(13: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
tuple_param_set!(14: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
tuple_param_set!(15: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
tuple_param_set!(16: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);
