//! `#[derive(FromRow)]` for pgkeel: a struct with named fields built from a row by
//! column name. Use it through pgkeel's `derive` feature (`pgkeel::FromRow`).
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
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, LitStr};

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
    let mut name = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("pgkeel")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let lit: LitStr = meta.value()?.parse()?;
                name = Some(lit.value());
                Ok(())
            } else {
                Err(meta.error("expected `rename = \"column\"`"))
            }
        })?;
    }
    Ok(name)
}
