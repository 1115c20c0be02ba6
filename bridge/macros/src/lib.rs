//! `#[bridge::blocking]`: the blocking API of a library, generated from its
//! async API. Use it through the `bridge` crate (`bridge::blocking`, on by
//! default through its `macros` feature); the documentation is there.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{ImplItem, Item};

mod method;
mod options;
mod twin;
mod wrapper;

/// (Implemented in the `bridge-macros` crate; re-exported, with the
/// documentation above, as `bridge::blocking`.)
#[proc_macro_attribute]
pub fn blocking(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item = TokenStream2::from(item);
    match expand(attr, item.clone()) {
        Ok(out) => out.into(),
        Err(e) => {
            // Keep the item as written (minus our method markers), so the
            // only errors are ours, not a cascade from a vanished item.
            let mut out = match syn::parse2::<Item>(item.clone()) {
                Ok(Item::Impl(mut imp)) => {
                    for it in &mut imp.items {
                        if let ImplItem::Fn(f) = it {
                            let _ = method::take_skip(&mut f.attrs);
                        }
                    }
                    imp.into_token_stream()
                }
                _ => item,
            };
            out.extend(e.to_compile_error());
            out.into()
        }
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if is_skip(&attr) {
        let span = match syn::parse2::<Item>(item.clone()) {
            Ok(Item::Fn(f)) => f.sig.ident.span(),
            _ => item.span(),
        };
        return Err(syn::Error::new(
            span,
            "`#[bridge::blocking(skip)]` marks a method of an impl block that has \
             `#[bridge::blocking]` (that method then gets no blocking twin); this item is not \
             in one: remove the attribute, or put `#[bridge::blocking]` on the impl block",
        ));
    }
    let options: options::Options = syn::parse2(attr)?;
    let imp = match syn::parse2::<Item>(item)? {
        Item::Impl(imp) => imp,
        other => return Err(not_an_impl(&other)),
    };
    if let Some((_, trait_path, _)) = &imp.trait_ {
        let ty = imp.self_ty.to_token_stream().to_string();
        return Err(syn::Error::new_spanned(
            trait_path,
            format!(
                "#[bridge::blocking] goes on an inherent impl block (`impl {ty} {{ .. }}`), not \
                 on an impl of a trait: the twins it writes are new methods, which a trait impl \
                 cannot have. Put the `pub async fn`s in an inherent `impl {ty}` block with the \
                 attribute, and call them from the trait impl"
            ),
        ));
    }
    match &options.wrapper {
        Some(w) => wrapper::expand(imp, w, &options.krate),
        None => twin::expand(imp, &options.suffix, &options.krate),
    }
}

fn is_skip(attr: &TokenStream2) -> bool {
    syn::parse2::<syn::Ident>(attr.clone()).is_ok_and(|i| i == "skip")
}

/// The error for the attribute on something other than an impl block,
/// spanned on the item's name where it has one.
fn not_an_impl(item: &Item) -> syn::Error {
    const WHAT: &str = "#[bridge::blocking] goes on an inherent `impl` block, and writes a \
         blocking twin of each of its `pub async fn`s: \
         `#[bridge::blocking] impl Client { pub async fn get(&self) -> T { .. } }` gives \
         `Client::get_blocking`";
    let (span, hint) = match item {
        Item::Fn(f) => (
            f.sig.ident.span(),
            format!(
                "; for a free function, write its twin by hand: \
                 `pub fn {0}_blocking(..) -> T {{ bridge::call_blocking({0}(..)) }}`",
                f.sig.ident
            ),
        ),
        Item::Struct(s) => (
            s.ident.span(),
            "; put it on the `impl` block of the struct, not on the struct".to_owned(),
        ),
        Item::Enum(e) => (
            e.ident.span(),
            "; put it on the `impl` block of the enum, not on the enum".to_owned(),
        ),
        Item::Trait(t) => (
            t.ident.span(),
            "; put it on the inherent `impl` block of a type, not on a trait".to_owned(),
        ),
        Item::Mod(m) => (
            m.ident.span(),
            "; put it on each `impl` block in the module".to_owned(),
        ),
        other => (other.span(), String::new()),
    };
    syn::Error::new(span, format!("{WHAT}{hint}"))
}
