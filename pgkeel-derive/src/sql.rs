//! `#[derive(ToSql)]` and `#[derive(FromSql)]`: a Rust enum of unit variants is a
//! PostgreSQL enum (one label per variant), a struct with named fields is a composite
//! type (fields matched by name), and a `#[pgkeel(transparent)]` newtype converts as its
//! one field (a domain). The generated code calls `pgkeel::types::derive`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Data, DataEnum, DeriveInput, Fields, FieldsNamed, Ident, LitByteStr};

use crate::attrs::{self, TypeAttrs};

/// Which of the two traits to implement.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Trait {
    ToSql,
    FromSql,
}

impl Trait {
    fn name(self) -> &'static str {
        match self {
            Trait::ToSql => "ToSql",
            Trait::FromSql => "FromSql",
        }
    }
}

/// The impl of `which` for `input`, or a compile error saying what shape is unsupported.
pub fn expand(input: &DeriveInput, which: Trait) -> syn::Result<TokenStream> {
    let derive = which.name();
    if !input.generics.params.is_empty() {
        let msg = format!(
            "#[derive({derive})] does not support generic types: write the impl by hand \
             (see docs/TYPES.md, \"Writing your own ToSql / FromSql\")"
        );
        return Err(syn::Error::new_spanned(&input.generics, msg));
    }
    let attrs = attrs::type_attrs(&input.attrs)?;
    match &input.data {
        _ if attrs.transparent => transparent(input, which),
        Data::Enum(e) => enumeration(input, e, &attrs, which),
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => composite(input, named, &attrs, which),
            _ => {
                let msg = format!(
                    "#[derive({derive})] maps a struct to a composite type by field name, so it \
                     needs named fields; for a newtype over a domain's base type add \
                     #[pgkeel(transparent)]"
                );
                Err(syn::Error::new_spanned(&input.ident, msg))
            }
        },
        Data::Union(_) => {
            let msg = format!("#[derive({derive})] does not support unions");
            Err(syn::Error::new_spanned(&input.ident, msg))
        }
    }
}

/// `Some("name")` or `None`, for the `name` attribute.
fn type_name(attrs: &TypeAttrs) -> TokenStream {
    match &attrs.name {
        Some(n) => quote!(::std::option::Option::Some(#n)),
        None => quote!(::std::option::Option::None),
    }
}

/// The PostgreSQL name of a variant or field: its `rename`, else `rename_all` of its
/// Rust name, else the Rust name.
fn pg_name(ident: &Ident, attrs: &[syn::Attribute], all: &TypeAttrs) -> syn::Result<String> {
    let rust = ident.to_string();
    let rust = rust.strip_prefix("r#").unwrap_or(&rust);
    Ok(match attrs::rename(attrs)? {
        Some(name) => name,
        None => all
            .rename_all
            .map_or_else(|| rust.to_owned(), |c| c.apply(rust)),
    })
}

fn enumeration(
    input: &DeriveInput,
    data: &DataEnum,
    attrs: &TypeAttrs,
    which: Trait,
) -> syn::Result<TokenStream> {
    let name = &input.ident;
    if data.variants.is_empty() {
        let msg = "a PostgreSQL enum needs at least one label: this enum has no variants";
        return Err(syn::Error::new_spanned(name, msg));
    }
    let mut idents = Vec::new();
    let mut labels = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            let msg = format!(
                "#[derive({})] maps a Rust enum to a PostgreSQL enum, whose labels carry no \
                 data: variant `{}` has fields",
                which.name(),
                v.ident
            );
            return Err(syn::Error::new_spanned(v, msg));
        }
        idents.push(&v.ident);
        labels.push(pg_name(&v.ident, &v.attrs, attrs)?);
    }
    let pg = type_name(attrs);
    let checks = quote! {
        fn accepts(ty: &::pgkeel::types::Type) -> bool {
            ::pgkeel::types::derive::enum_mismatch(ty, #pg, &[#(#labels),*]).is_none()
        }

        fn mismatch(ty: &::pgkeel::types::Type) -> ::std::option::Option<::std::string::String> {
            ::pgkeel::types::derive::enum_mismatch(ty, #pg, &[#(#labels),*])
        }
    };
    Ok(match which {
        Trait::ToSql => quote! {
            impl ::pgkeel::types::ToSql for #name {
                #checks

                fn to_sql(
                    &self,
                    _ty: &::pgkeel::types::Type,
                    out: &mut ::pgkeel::types::BytesMut,
                ) -> ::std::result::Result<::pgkeel::types::IsNull, ::pgkeel::types::BoxError> {
                    let label = match self { #(#name::#idents => #labels,)* };
                    ::pgkeel::types::derive::write_label(label, out)
                }

                ::pgkeel::to_sql_checked!();
            }
        },
        Trait::FromSql => {
            let bytes = labels
                .iter()
                .map(|l| LitByteStr::new(l.as_bytes(), Span::call_site()));
            quote! {
                impl<'a> ::pgkeel::types::FromSql<'a> for #name {
                    fn from_sql(
                        ty: &::pgkeel::types::Type,
                        raw: &'a [u8],
                    ) -> ::std::result::Result<Self, ::pgkeel::types::BoxError> {
                        match raw {
                            #(#bytes => ::std::result::Result::Ok(#name::#idents),)*
                            _ => ::std::result::Result::Err(
                                ::pgkeel::types::derive::unknown_label::<Self>(ty, raw),
                            ),
                        }
                    }

                    #checks
                }
            }
        }
    })
}

fn composite(
    input: &DeriveInput,
    named: &FieldsNamed,
    attrs: &TypeAttrs,
    which: Trait,
) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let mut idents = Vec::new();
    let mut types = Vec::new();
    let mut pg_names = Vec::new();
    for f in &named.named {
        let ident = f.ident.as_ref().expect("named field");
        pg_names.push(pg_name(ident, &f.attrs, attrs)?);
        idents.push(ident);
        types.push(&f.ty);
    }
    let pg = type_name(attrs);
    let tr = match which {
        Trait::ToSql => quote!(::pgkeel::types::ToSql),
        Trait::FromSql => quote!(::pgkeel::types::FromSql<'a>),
    };
    let checks = quote! {
        fn accepts(ty: &::pgkeel::types::Type) -> bool {
            <Self as #tr>::mismatch(ty).is_none()
        }

        fn mismatch(ty: &::pgkeel::types::Type) -> ::std::option::Option<::std::string::String> {
            ::pgkeel::types::derive::composite_mismatch(ty, #pg, &[#(
                (#pg_names, <#types as #tr>::accepts as fn(&::pgkeel::types::Type) -> bool)
            ),*])
        }
    };
    Ok(match which {
        Trait::ToSql => quote! {
            impl ::pgkeel::types::ToSql for #name {
                #checks

                fn to_sql(
                    &self,
                    ty: &::pgkeel::types::Type,
                    out: &mut ::pgkeel::types::BytesMut,
                ) -> ::std::result::Result<::pgkeel::types::IsNull, ::pgkeel::types::BoxError> {
                    use ::pgkeel::types::derive as d;
                    let fields = d::composite_fields::<Self>(ty)?;
                    let mut w = d::CompositeWriter::new(ty, fields.len(), out)?;
                    for f in fields {
                        match f.name() {
                            #(#pg_names => w.field::<Self, _>(ty, f, &self.#idents)?,)*
                            other => return ::std::result::Result::Err(
                                d::no_rust_field::<Self>(ty, other),
                            ),
                        }
                    }
                    ::std::result::Result::Ok(::pgkeel::types::IsNull::No)
                }

                ::pgkeel::to_sql_checked!();
            }
        },
        Trait::FromSql => {
            let slots: Vec<Ident> = idents
                .iter()
                .map(|i| Ident::new(&format!("__pgkeel_{i}"), Span::call_site()))
                .collect();
            quote! {
                impl<'a> ::pgkeel::types::FromSql<'a> for #name {
                    fn from_sql(
                        ty: &::pgkeel::types::Type,
                        raw: &'a [u8],
                    ) -> ::std::result::Result<Self, ::pgkeel::types::BoxError> {
                        use ::pgkeel::types::derive as d;
                        let mut r = d::CompositeReader::new::<Self>(ty, raw)?;
                        #(let mut #slots: ::std::option::Option<#types> = ::std::option::Option::None;)*
                        while let ::std::option::Option::Some((f, v)) = r.next_field::<Self>()? {
                            match f.name() {
                                #(#pg_names => #slots = ::std::option::Option::Some(
                                    r.decode::<Self, #types>(f, v)?,
                                ),)*
                                other => return ::std::result::Result::Err(
                                    d::no_rust_field::<Self>(ty, other),
                                ),
                            }
                        }
                        ::std::result::Result::Ok(#name {#(
                            #idents: #slots.ok_or_else(|| d::missing_field::<Self>(ty, #pg_names))?,
                        )*})
                    }

                    #checks
                }
            }
        }
    })
}

fn transparent(input: &DeriveInput, which: Trait) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(s) if s.fields.len() == 1 => &s.fields,
        _ => {
            let msg = "#[pgkeel(transparent)] is for a struct with exactly one field";
            return Err(syn::Error::new_spanned(name, msg));
        }
    };
    let field = fields.iter().next().expect("one field");
    let ty = &field.ty;
    let (access, build) = match &field.ident {
        Some(ident) => (quote!(self.#ident), quote!(|v| #name { #ident: v })),
        None => (quote!(self.0), quote!(#name)),
    };
    Ok(match which {
        Trait::ToSql => quote! {
            impl ::pgkeel::types::ToSql for #name {
                fn sql_type() -> ::pgkeel::types::Type {
                    <#ty as ::pgkeel::types::ToSql>::sql_type()
                }

                fn accepts(ty: &::pgkeel::types::Type) -> bool {
                    <#ty as ::pgkeel::types::ToSql>::accepts(ty)
                }

                fn mismatch(ty: &::pgkeel::types::Type) -> ::std::option::Option<::std::string::String> {
                    <#ty as ::pgkeel::types::ToSql>::mismatch(ty)
                }

                fn to_sql(
                    &self,
                    ty: &::pgkeel::types::Type,
                    out: &mut ::pgkeel::types::BytesMut,
                ) -> ::std::result::Result<::pgkeel::types::IsNull, ::pgkeel::types::BoxError> {
                    <#ty as ::pgkeel::types::ToSql>::to_sql(&#access, ty, out)
                }

                ::pgkeel::to_sql_checked!();
            }
        },
        Trait::FromSql => quote! {
            impl<'a> ::pgkeel::types::FromSql<'a> for #name {
                fn from_sql(
                    ty: &::pgkeel::types::Type,
                    raw: &'a [u8],
                ) -> ::std::result::Result<Self, ::pgkeel::types::BoxError> {
                    <#ty as ::pgkeel::types::FromSql<'a>>::from_sql(ty, raw).map(#build)
                }

                fn from_sql_null(
                    ty: &::pgkeel::types::Type,
                ) -> ::std::result::Result<Self, ::pgkeel::types::BoxError> {
                    <#ty as ::pgkeel::types::FromSql<'a>>::from_sql_null(ty).map(#build)
                }

                fn accepts(ty: &::pgkeel::types::Type) -> bool {
                    <#ty as ::pgkeel::types::FromSql<'a>>::accepts(ty)
                }

                fn mismatch(ty: &::pgkeel::types::Type) -> ::std::option::Option<::std::string::String> {
                    <#ty as ::pgkeel::types::FromSql<'a>>::mismatch(ty)
                }
            }
        },
    })
}
