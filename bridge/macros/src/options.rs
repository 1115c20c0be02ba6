//! The options of `#[bridge::blocking(...)]`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Path, Token, Visibility};

/// Where the options are listed, for error messages.
const OPTIONS: &str = "the options are `suffix = \"_sync\"` (the twins' name suffix; \
     default \"_blocking\"), `wrapper = BlockingClient` (a blocking wrapper type instead of \
     twins) and `crate = path::to::bridge` (where the bridge crate is, if renamed)";

/// The parsed options.
pub(crate) struct Options {
    /// The suffix of the twins' names (suffix form only).
    pub(crate) suffix: String,
    /// The wrapper type to generate (wrapper form), if any.
    pub(crate) wrapper: Option<Wrapper>,
    /// The path of the bridge crate in generated code.
    pub(crate) krate: Path,
}

/// `wrapper = [vis] Name`.
pub(crate) struct Wrapper {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut suffix: Option<(String, Span)> = None;
        let mut wrapper: Option<(Wrapper, Span)> = None;
        let mut krate: Option<Path> = None;
        while !input.is_empty() {
            let key = if input.peek(Token![crate]) {
                let token: Token![crate] = input.parse()?;
                Ident::new("crate", token.span)
            } else {
                input.call(Ident::parse_any).map_err(|e| {
                    syn::Error::new(e.span(), format!("expected an option: {OPTIONS}"))
                })?
            };
            let span = key.span();
            let already = |what: &str| {
                syn::Error::new(
                    span,
                    format!(
                        "`{what}` is given twice; give each option of #[bridge::blocking] once"
                    ),
                )
            };
            match key.to_string().as_str() {
                "suffix" => {
                    if suffix.is_some() {
                        return Err(already("suffix"));
                    }
                    eq(input, "suffix = \"_sync\"")?;
                    let lit: LitStr = input.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "the suffix is a string literal: `suffix = \"_sync\"`",
                        )
                    })?;
                    let value = lit.value();
                    if value.is_empty() || !value.chars().all(|c| c == '_' || c.is_alphanumeric()) {
                        return Err(syn::Error::new(
                            lit.span(),
                            "the suffix must be non-empty and made of letters, digits and `_`, \
                             so that `get` + suffix is a method name: `suffix = \"_sync\"`",
                        ));
                    }
                    suffix = Some((value, span));
                }
                "wrapper" => {
                    if wrapper.is_some() {
                        return Err(already("wrapper"));
                    }
                    eq(input, "wrapper = BlockingClient")?;
                    let vis: Visibility = input.parse()?;
                    let ident: Ident = input.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "name the wrapper type to generate, as an identifier: \
                             `wrapper = BlockingClient` (optionally with a visibility: \
                             `wrapper = pub(crate) BlockingClient`)",
                        )
                    })?;
                    wrapper = Some((Wrapper { vis, ident }, span));
                }
                "crate" => {
                    if krate.is_some() {
                        return Err(already("crate"));
                    }
                    eq(input, "crate = path::to::bridge")?;
                    krate = Some(input.call(Path::parse_mod_style).map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`crate` takes the path of the bridge crate as it is named in this \
                             crate: `crate = my_bridge` or `crate = ::my_crate::bridge`",
                        )
                    })?);
                }
                other => {
                    return Err(syn::Error::new(
                        span,
                        format!("unknown option `{other}` of #[bridge::blocking]; {OPTIONS}"),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "separate the options of #[bridge::blocking] with commas",
                )
            })?;
        }
        if let (Some(_), Some((w, wrapper_span))) = (&suffix, &wrapper) {
            return Err(syn::Error::new(
                *wrapper_span,
                format!(
                    "`suffix` and `wrapper` do not combine: the methods of the wrapper `{}` \
                     keep their names. Choose one form",
                    w.ident
                ),
            ));
        }
        Ok(Options {
            suffix: suffix.map_or_else(|| "_blocking".to_owned(), |(s, _)| s),
            wrapper: wrapper.map(|(w, _)| w),
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::bridge)),
        })
    }
}

/// Parses the `=` after an option's name.
fn eq(input: ParseStream<'_>, example: &str) -> syn::Result<()> {
    input.parse::<Token![=]>().map(drop).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected `=` after the option: `{example}`"),
        )
    })
}
