//! `#[bridge::blocking]`: the blocking API of a library, generated from its
//! async API (a blocking twin of each `pub async fn`, a blocking iterator for
//! each `pub fn` returning `impl Stream`). Use it through the `bridge` crate
//! (`bridge::blocking`, on by default through its `macros` feature); the
//! documentation, with compiled examples, is there.

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

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};
    use syn::{ImplItem, ImplItemFn, Item};

    /// The methods named `name` in the expansion, in every impl block.
    fn methods(out: proc_macro2::TokenStream, name: &str) -> Vec<ImplItemFn> {
        let file: syn::File = syn::parse2(out).expect("the expansion parses");
        let mut found = Vec::new();
        for item in file.items {
            let Item::Impl(imp) = item else { continue };
            for item in imp.items {
                match item {
                    ImplItem::Fn(f) if f.sig.ident == name => found.push(f),
                    _ => {}
                }
            }
        }
        found
    }

    fn docs(f: &ImplItemFn) -> Vec<String> {
        f.attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .map(|a| {
                a.meta
                    .require_name_value()
                    .unwrap()
                    .value
                    .to_token_stream()
                    .to_string()
            })
            .collect()
    }

    fn has_cfg(f: &ImplItemFn) -> bool {
        f.attrs.iter().any(|a| a.path().is_ident("cfg"))
    }

    const STREAM_METHOD: &str = "
        impl Client {
            /// Every key under `prefix`.
            #[cfg(feature = \"list\")]
            pub fn list<P>(&self, prefix: P) -> impl Stream<Item = io::Result<String>> + Send + 'static
            where
                P: AsRef<str>,
            {
                todo!()
            }
        }";

    #[test]
    fn a_stream_twin_keeps_docs_cfg_generics_and_where_and_returns_a_blocking_iter() {
        let item: proc_macro2::TokenStream = STREAM_METHOD.parse().unwrap();
        let out = super::expand(quote!(suffix = "_sync", crate = my::bridge), item).unwrap();
        let [twin] = &methods(out, "list_sync")[..] else {
            panic!("one twin")
        };
        let docs = docs(twin);
        assert!(docs[0].contains("Every key under `prefix`."), "{docs:?}");
        assert!(
            docs.last()
                .unwrap()
                .contains("blocking iterator twin of [`list`]"),
            "{docs:?}"
        );
        assert!(has_cfg(twin));
        assert_eq!(twin.sig.generics.params.len(), 1);
        assert!(twin.sig.generics.where_clause.is_some());
        assert_eq!(
            twin.sig.output.to_token_stream().to_string(),
            "-> my :: bridge :: BlockingIter < io :: Result < String > >"
        );
        let body = twin.block.to_token_stream().to_string();
        assert!(body.contains("use my :: bridge :: iter_blocking"), "{body}");
        assert!(
            body.contains("Self :: list :: < P > (self , prefix)"),
            "{body}"
        );
    }

    #[test]
    fn a_stream_method_of_the_wrapper_keeps_its_name_docs_and_cfg() {
        let item: proc_macro2::TokenStream = STREAM_METHOD.parse().unwrap();
        let out = super::expand(quote!(wrapper = BlockingClient), item).unwrap();
        let found = methods(out, "list");
        let [_original, wrapped] = &found[..] else {
            panic!("the async method and the wrapper's")
        };
        let docs = docs(wrapped);
        assert!(docs[0].contains("Every key under `prefix`."), "{docs:?}");
        assert!(
            docs.last()
                .unwrap()
                .contains("blocking iterator over the stream"),
            "{docs:?}"
        );
        assert!(has_cfg(wrapped));
        assert_eq!(
            wrapped.sig.output.to_token_stream().to_string(),
            "-> :: bridge :: BlockingIter < io :: Result < String > >"
        );
    }

    #[test]
    fn other_sync_fns_keep_their_behaviour() {
        let item = quote! {
            impl Client {
                pub async fn get(&self) -> u32 { 1 }
                pub fn len(&self) -> usize { 0 }
                pub fn iter(&self) -> impl Iterator<Item = u32> { None.into_iter() }
            }
        };
        let out = super::expand(quote!(), item.clone()).unwrap();
        assert_eq!(methods(out.clone(), "len_blocking").len(), 0);
        assert_eq!(methods(out, "iter_blocking").len(), 0);
        let out = super::expand(quote!(wrapper = W), item).unwrap();
        let [_, forwarded] = &methods(out, "iter")[..] else {
            panic!("forwarded")
        };
        assert_eq!(
            forwarded.sig.output.to_token_stream().to_string(),
            "-> impl Iterator < Item = u32 >"
        );
    }
}
