//! Derive macros for pgkeel, used through its `derive` feature: `#[derive(FromRow)]`
//! builds a struct with named fields from a row by column name; `#[derive(ToSql,
//! FromSql)]` maps a Rust enum to a PostgreSQL enum, a struct to a composite type, and a
//! `#[pgkeel(transparent)]` newtype to its field's type (a domain).
//!
//! ```ignore
//! #[derive(pgkeel::FromRow)]
//! struct User {
//!     id: i64,
//!     #[pgkeel(rename = "user_name")]
//!     name: String,
//!     email: Option<String>, // NULL reads as None
//! }
//! let users: Vec<User> = rows.iter().map(|r| r.to()).collect::<Result<_, _>>()?;
//! ```
//!
//! ```ignore
//! #[derive(Debug, pgkeel::ToSql, pgkeel::FromSql)]
//! #[pgkeel(name = "mood", rename_all = "snake_case")]
//! enum Mood { Sad, Ok, VeryHappy } // labels 'sad', 'ok', 'very_happy'
//!
//! #[derive(Debug, pgkeel::ToSql, pgkeel::FromSql)]
//! struct Pair { m: Mood, n: Option<i32> } // CREATE TYPE pair AS (m mood, n int4)
//! ```
#![forbid(unsafe_code)]

mod attrs;
mod sql;

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, parse_macro_input};

/// Implements `pgkeel::FromRow` for a struct with named fields: each field is read with
/// `Row::try_get` from the column of its name, or of `#[pgkeel(rename = "...")]`.
#[proc_macro_derive(FromRow, attributes(pgkeel))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Implements `pgkeel::types::ToSql`: a unit-only enum as a PostgreSQL enum (labels by
/// variant name, `#[pgkeel(rename = "..")]`, `#[pgkeel(rename_all = "..")]`), a struct
/// with named fields as a composite type (fields by name), or a
/// `#[pgkeel(transparent)]` newtype as its field. `#[pgkeel(name = "..")]` also checks
/// the PostgreSQL type's name.
#[proc_macro_derive(ToSql, attributes(pgkeel))]
pub fn derive_to_sql(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    sql::expand(&input, sql::Trait::ToSql)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Implements `pgkeel::types::FromSql` for the shapes [`macro@ToSql`] takes, with the
/// same attributes.
#[proc_macro_derive(FromSql, attributes(pgkeel))]
pub fn derive_from_sql(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    sql::expand(&input, sql::Trait::FromSql)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            _ => return Err(syn::Error::new_spanned(input, "FromRow needs named fields")),
        },
        _ => return Err(syn::Error::new_spanned(input, "FromRow is for structs")),
    };
    let mut reads = Vec::new();
    for field in fields {
        let ident = field.ident.as_ref().expect("named field");
        let ty = &field.ty;
        let column = column_name(field)?.unwrap_or_else(|| ident.to_string());
        reads.push(quote! {
            #ident: row.try_get::<&str, #ty>(#column)?
        });
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::pgkeel::FromRow for #name #ty_generics #where_clause {
            fn from_row(row: &::pgkeel::Row) -> ::std::result::Result<Self, ::pgkeel::Error> {
                ::std::result::Result::Ok(#name { #(#reads,)* })
            }
        }
    })
}

/// The column named by `#[pgkeel(rename = "...")]`, if the field has one.
fn column_name(field: &syn::Field) -> syn::Result<Option<String>> {
    attrs::rename(&field.attrs)
}
