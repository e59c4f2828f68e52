//! `#[pgkeel(...)]` attributes: `name`, `rename_all` and `transparent` on the type,
//! `rename` on a variant or field, and the `rename_all` case rules.

use syn::{Attribute, LitStr};

/// The attributes on the type itself.
#[derive(Default)]
pub struct TypeAttrs {
    /// `name = "..."`: the PostgreSQL type's name, checked by `accepts` when given.
    pub name: Option<String>,
    /// `rename_all = "..."`: how variant or field names become labels or field names.
    pub rename_all: Option<Case>,
    /// `transparent`: a newtype that converts exactly as its one field (a domain).
    pub transparent: bool,
}

/// Reads the `#[pgkeel(...)]` attributes of a type.
pub fn type_attrs(attrs: &[Attribute]) -> syn::Result<TypeAttrs> {
    let mut out = TypeAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("pgkeel")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                out.name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("rename_all") {
                let lit: LitStr = meta.value()?.parse()?;
                let case = Case::parse(&lit.value())
                    .ok_or_else(|| syn::Error::new_spanned(&lit, Case::EXPECTED))?;
                out.rename_all = Some(case);
            } else if meta.path.is_ident("transparent") {
                out.transparent = true;
            } else {
                return Err(meta
                    .error("expected `name = \"...\"`, `rename_all = \"...\"` or `transparent`"));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The `#[pgkeel(rename = "...")]` of a variant or field, if it has one.
pub fn rename(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut name = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("pgkeel")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                name = Some(meta.value()?.parse::<LitStr>()?.value());
                Ok(())
            } else {
                Err(meta.error("expected `rename = \"...\"`"))
            }
        })?;
    }
    Ok(name)
}

/// A `rename_all` rule, as serde and tokio-postgres's `postgres-derive` name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
    Train,
}

impl Case {
    const EXPECTED: &'static str = "rename_all must be one of \"lowercase\", \"UPPERCASE\", \
        \"PascalCase\", \"camelCase\", \"snake_case\", \"SCREAMING_SNAKE_CASE\", \
        \"kebab-case\", \"SCREAMING-KEBAB-CASE\", \"Train-Case\"";

    fn parse(s: &str) -> Option<Case> {
        Some(match s {
            "lowercase" => Case::Lower,
            "UPPERCASE" => Case::Upper,
            "PascalCase" => Case::Pascal,
            "camelCase" => Case::Camel,
            "snake_case" => Case::Snake,
            "SCREAMING_SNAKE_CASE" => Case::ScreamingSnake,
            "kebab-case" => Case::Kebab,
            "SCREAMING-KEBAB-CASE" => Case::ScreamingKebab,
            "Train-Case" => Case::Train,
            _ => return None,
        })
    }

    /// `ident` (a Rust variant or field name) under this rule.
    pub fn apply(self, ident: &str) -> String {
        let words = words(ident);
        let cap = |w: &String| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        };
        let caps = || words.iter().map(cap).collect::<Vec<String>>();
        match self {
            Case::Lower => words.concat(),
            Case::Upper => words.concat().to_uppercase(),
            Case::Pascal => caps().concat(),
            Case::Camel => {
                let mut s = words.first().cloned().unwrap_or_default();
                s.push_str(&caps()[1.min(words.len())..].concat());
                s
            }
            Case::Snake => words.join("_"),
            Case::ScreamingSnake => words.join("_").to_uppercase(),
            Case::Kebab => words.join("-"),
            Case::ScreamingKebab => words.join("-").to_uppercase(),
            Case::Train => caps().join("-"),
        }
    }
}

/// The lowercase words of a Rust name: split at `_` and before an upper-case letter
/// that follows a lower-case letter or a digit (`VeryHappy`, `very_happy` -> very, happy).
fn words(ident: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in ident.split('_').filter(|p| !p.is_empty()) {
        let mut word = String::new();
        let mut prev_lower = false;
        for c in part.chars() {
            if c.is_uppercase() && prev_lower {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        }
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_rules_match_serde() {
        let cases = [
            (Case::Lower, "VeryHappy", "veryhappy"),
            (Case::Upper, "VeryHappy", "VERYHAPPY"),
            (Case::Pascal, "very_happy", "VeryHappy"),
            (Case::Camel, "VeryHappy", "veryHappy"),
            (Case::Snake, "VeryHappy", "very_happy"),
            (Case::ScreamingSnake, "VeryHappy", "VERY_HAPPY"),
            (Case::Kebab, "VeryHappy", "very-happy"),
            (Case::ScreamingKebab, "very_happy", "VERY-HAPPY"),
            (Case::Train, "VeryHappy", "Very-Happy"),
            (Case::Snake, "Sad", "sad"),
            (Case::Snake, "Http2Ok", "http2_ok"),
            (Case::Camel, "x", "x"),
        ];
        for (case, ident, want) in cases {
            assert_eq!(case.apply(ident), want, "{case:?} {ident}");
        }
        assert_eq!(Case::parse("nope"), None);
    }
}
