//! What both forms need to know about one method: its receiver, its
//! arguments bound to plain names, its attributes, the shape of its output.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Attribute, CapturedParam, FnArg, GenericArgument, GenericParam, Generics, Ident, Lifetime, Pat,
    PatIdent, PatType, Path, PathArguments, QSelf, ReturnType, Signature, Token, Type,
    TypeParamBound, Visibility,
};

/// Whether a method is visible outside its impl (`pub`, `pub(crate)`, ...).
/// Only these get a twin or a place in the wrapper.
pub(crate) fn is_pub(vis: &Visibility) -> bool {
    !matches!(vis, Visibility::Inherited)
}

/// How a method takes `self`.
pub(crate) enum ReceiverKind {
    /// No receiver: an associated function.
    None,
    /// `&self`, `&'a self`, `self: &Self`.
    Ref(Option<Lifetime>),
    /// `&mut self`, `self: &mut Self`.
    RefMut(Option<Lifetime>),
    /// `self`, `mut self`, `self: Self`.
    Value,
    /// Anything else (`self: Box<Self>`, `self: Pin<&mut Self>`, ...).
    Other,
}

/// Classifies the receiver of `sig`; `self_ty` is the impl's type, which a
/// receiver may spell out instead of `Self`.
pub(crate) fn receiver_kind(sig: &Signature, self_ty: &Type) -> ReceiverKind {
    let Some(r) = sig.receiver() else {
        return ReceiverKind::None;
    };
    match &*r.ty {
        t if is_self(t, self_ty) => ReceiverKind::Value,
        Type::Reference(re) if is_self(&re.elem, self_ty) => match re.mutability {
            Some(_) => ReceiverKind::RefMut(re.lifetime.clone()),
            None => ReceiverKind::Ref(re.lifetime.clone()),
        },
        _ => ReceiverKind::Other,
    }
}

/// Whether `ty` is `Self` or the impl's own type written out.
pub(crate) fn is_self(ty: &Type, self_ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self") => true,
        Type::Paren(p) => is_self(&p.elem, self_ty),
        Type::Group(g) => is_self(&g.elem, self_ty),
        _ => tokens_eq(ty, self_ty),
    }
}

fn tokens_eq(a: &impl ToTokens, b: &impl ToTokens) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

/// The non-receiver arguments of `sig`, each bound to a plain name so that
/// it can be forwarded: `key: &str` stays as it is, a pattern such as
/// `(a, b): (u8, u8)`, `mut n: u32` or `_: u8` becomes `arg1: (u8, u8)`.
pub(crate) struct BoundArgs {
    /// The arguments for the generated signature (no receiver).
    pub(crate) inputs: Vec<FnArg>,
    /// The names to pass on, in order.
    pub(crate) names: Vec<Ident>,
}

pub(crate) fn bind_args(sig: &Signature) -> BoundArgs {
    let taken: HashSet<String> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => plain_name(&t.pat).map(|i| i.to_string()),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut inputs = Vec::new();
    let mut names = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(t) = arg else { continue };
        let name = match plain_name(&t.pat) {
            Some(ident) => ident.clone(),
            None => {
                let mut name = format!("arg{i}");
                while taken.contains(&name) {
                    name.push('_');
                }
                Ident::new(&name, proc_macro2::Span::call_site())
            }
        };
        inputs.push(FnArg::Typed(PatType {
            attrs: t.attrs.clone(),
            pat: Box::new(Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: name.clone(),
                subpat: None,
            })),
            colon_token: t.colon_token,
            ty: t.ty.clone(),
        }));
        names.push(name);
    }
    BoundArgs { inputs, names }
}

/// The name an argument pattern binds, if it is a plain (possibly `mut`) name.
fn plain_name(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}

/// `::<T, N>` for the type and const parameters of a method (lifetimes are
/// inferred, and late-bound ones may not be named), or nothing.
pub(crate) fn turbofish(generics: &Generics) -> TokenStream {
    let args: Vec<&Ident> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            GenericParam::Const(c) => Some(&c.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    if args.is_empty() {
        TokenStream::new()
    } else {
        quote!(::<#(#args),*>)
    }
}

/// What a method's blocking form does, and so which methods have one.
pub(crate) enum Blocking {
    /// An `async fn`: runs it to completion through `call_blocking`.
    Future,
    /// A (not `async`) `fn` returning `impl Stream<Item = T>`: iterates the
    /// stream through `iter_blocking`, returning `BlockingIter<T>`.
    Stream {
        /// The `Stream` trait as the method names it, without `<Item = T>`.
        bound: Path,
        /// `T`.
        item: Box<Type>,
    },
}

/// The blocking form `sig` gets, if any; an error for a stream that
/// borrows, which its blocking iterator could never hold.
pub(crate) fn blocking_kind(sig: &Signature) -> syn::Result<Option<Blocking>> {
    if sig.asyncness.is_some() {
        return Ok(Some(Blocking::Future));
    }
    let syn::ReturnType::Type(_, ty) = &sig.output else {
        return Ok(None);
    };
    let Type::ImplTrait(imp) = ungroup(ty) else {
        return Ok(None);
    };
    let Some((bound, item)) = imp.bounds.iter().find_map(stream_bound) else {
        return Ok(None);
    };
    // `+ 'a`, `+ '_` or `use<'a>`: the stream may borrow for `'a`, and no
    // `'a` of a method outlives the iterator the twin hands out.
    let borrowed = imp.bounds.iter().find_map(|b| match b {
        TypeParamBound::Lifetime(l) if l.ident != "static" => Some(l.to_token_stream()),
        TypeParamBound::PreciseCapture(c) => c
            .params
            .iter()
            .any(|p| matches!(p, CapturedParam::Lifetime(l) if l.ident != "static"))
            .then(|| c.to_token_stream()),
        _ => None,
    });
    if let Some(borrowed) = borrowed {
        let name = &sig.ident;
        return Err(syn::Error::new_spanned(
            &borrowed,
            format!(
                "the stream returned by `{name}` may borrow (`{}`), but its blocking iterator \
                 polls it on bridge's worker loop until the caller drops the iterator, long \
                 after the call returns, so it must be `Send + 'static`: move what it needs \
                 into it (clone the client's `Arc`, own the arguments) and return \
                 `impl Stream<Item = {}> + Send + 'static`, or mark `{name}` \
                 `#[bridge::blocking(skip)]`",
                pretty(&borrowed),
                pretty(&item),
            ),
        ));
    }
    // Not declared `'static` (nor with a `use<..>` list, checked above)
    // while the method takes a reference: under edition 2024 such an
    // `impl Trait` captures that reference's lifetime even if the stream
    // does not use it, and rustc would report the twin's call as "borrowed
    // data escapes" with no hint of what to write. One rule for every
    // edition, said here: declare it.
    let declared = imp.bounds.iter().any(|b| match b {
        TypeParamBound::Lifetime(l) => l.ident == "static",
        TypeParamBound::PreciseCapture(_) => true,
        _ => false,
    });
    if !declared && takes_a_reference(sig) {
        let name = &sig.ident;
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "the stream returned by `{name}` must be declared `+ 'static`: its blocking \
                 iterator polls it on bridge's worker loop after the call returns, and an \
                 `impl Stream` return without `+ 'static` may capture the lifetime of `{name}`'s \
                 reference arguments (it always does under edition 2024); return \
                 `impl Stream<Item = {}> + Send + 'static`, moving what the stream needs into \
                 it, or mark `{name}` `#[bridge::blocking(skip)]`",
                pretty(&item),
            ),
        ));
    }
    Ok(Some(Blocking::Stream { bound, item }))
}

/// Whether a method takes a reference: `&self`, `&mut self`, `self: &Self`,
/// or an argument whose type holds a reference or a lifetime.
fn takes_a_reference(sig: &Signature) -> bool {
    struct Finds(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finds {
        fn visit_type_reference(&mut self, _: &'ast syn::TypeReference) {
            self.0 = true;
        }
        fn visit_lifetime(&mut self, _: &'ast Lifetime) {
            self.0 = true;
        }
    }
    let mut finds = Finds(false);
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if r.reference.is_some() {
                    return true;
                }
                syn::visit::Visit::visit_type(&mut finds, &r.ty);
            }
            FnArg::Typed(t) => syn::visit::Visit::visit_type(&mut finds, &t.ty),
        }
    }
    finds.0
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => ungroup(&p.elem),
        Type::Group(g) => ungroup(&g.elem),
        other => other,
    }
}

/// `Stream<Item = T>` (any path ending in `Stream`): the path without its
/// arguments, and `T`.
fn stream_bound(bound: &TypeParamBound) -> Option<(Path, Box<Type>)> {
    let TypeParamBound::Trait(t) = bound else {
        return None;
    };
    let last = t.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if last.ident != "Stream" {
        return None;
    }
    let item = args.args.iter().find_map(|a| match a {
        GenericArgument::AssocType(a) if a.ident == "Item" && a.generics.is_none() => {
            Some(Box::new(a.ty.clone()))
        }
        _ => None,
    })?;
    let mut path = t.path.clone();
    path.segments.last_mut()?.arguments = PathArguments::None;
    Some((path, item))
}

/// The return type of a method's blocking form: the method's own for a
/// future, `path::BlockingIter<T>` for a stream.
pub(crate) fn blocking_output(krate: &Path, kind: &Blocking, output: &ReturnType) -> ReturnType {
    match kind {
        Blocking::Future => output.clone(),
        Blocking::Stream { item, .. } => syn::parse_quote!(-> #krate::BlockingIter<#item>),
    }
}

/// `path::call_blocking(call)` for a future, `path::iter_blocking(call)`
/// for a stream, with the call spanned on the method's name.
///
/// The future passes through a local `future_must_be_send`, whose output is
/// declared `Send`: a future that is not `Send` is reported once, at the
/// method, as rustc words it for an `async fn` ("future returned by `get` is
/// not `Send`", with the value held across an `.await` that makes it so),
/// and never again by `call_blocking`. (An output that is not `Send` is
/// reported by `call_blocking`'s bound, also at the method.) A stream passes
/// through `stream_must_be_send_and_static` in the same way, declared with
/// the `Stream` trait the method names.
pub(crate) fn blocking_call(
    krate: &Path,
    call: TokenStream,
    name: &Ident,
    unsafety: Option<Token![unsafe]>,
    kind: &Blocking,
) -> TokenStream {
    let span = name.span();
    let call = match unsafety {
        // The twin is an `unsafe fn` too: its caller took on the contract.
        Some(_) => quote_spanned!(span=> unsafe { #call }),
        None => call,
    };
    let check = match kind {
        Blocking::Future => quote_spanned! {span=>
            use #krate::call_blocking;
            fn future_must_be_send<F>(future: F) -> impl ::core::future::Future<Output = F::Output> + ::core::marker::Send
            where
                F: ::core::future::Future + ::core::marker::Send,
            {
                future
            }
            call_blocking(future_must_be_send(value))
        },
        Blocking::Stream { bound, .. } => quote_spanned! {span=>
            use #krate::iter_blocking;
            fn stream_must_be_send_and_static<S>(stream: S) -> impl #bound<Item = S::Item> + ::core::marker::Send + 'static
            where
                S: #bound + ::core::marker::Send + 'static,
            {
                stream
            }
            iter_blocking(stream_must_be_send_and_static(value))
        },
    };
    // The call (the user's arguments) is evaluated outside the block that
    // declares the helper items, which would shadow a parameter of the same
    // name.
    quote_spanned! {span=>
        {
            let value = #call;
            {
                #check
            }
        }
    }
}

/// Prints tokens for a message: `Pin<&mut Self>`, not `Pin < & mut Self >`
/// (a space stays only between two words).
pub(crate) fn pretty(tokens: &impl ToTokens) -> String {
    let s = tokens.to_token_stream().to_string();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let keep =
            c != ' ' || (i > 0 && word(chars[i - 1]) && chars.get(i + 1).is_some_and(|&n| word(n)));
        if keep {
            out.push(c);
        }
    }
    out
}

/// A link target for `call_blocking` in generated docs: the crate path as
/// written, without a leading `::`.
pub(crate) fn doc_path(krate: &Path) -> String {
    let mut p = krate.clone();
    p.leading_colon = None;
    p.to_token_stream().to_string().replace(' ', "")
}

/// The attributes of a method that its twin keeps: docs, `cfg`s, lint
/// levels, `deprecated`, `must_use`. Others (attribute macros such as
/// `#[tracing::instrument]`, `#[inline]`) describe the async body and stay
/// on the async method alone.
pub(crate) fn kept_attrs(attrs: &[Attribute]) -> Vec<Attribute> {
    const KEPT: [&str; 6] = ["doc", "cfg", "cfg_attr", "allow", "deprecated", "must_use"];
    attrs
        .iter()
        .filter(|a| KEPT.iter().any(|k| a.path().is_ident(k)))
        .cloned()
        .collect()
}

/// The `cfg`s and lint levels of an impl block, for the items generated
/// beside it.
pub(crate) fn block_attrs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("allow"))
        .cloned()
        .collect()
}

/// Appends a paragraph to the docs in `attrs`.
pub(crate) fn push_doc(attrs: &mut Vec<Attribute>, text: &str) {
    if attrs.iter().any(|a| a.path().is_ident("doc")) {
        attrs.push(syn::parse_quote!(#[doc = ""]));
    }
    let text = format!(" {text}");
    attrs.push(syn::parse_quote!(#[doc = #text]));
}

/// Removes `#[bridge::blocking(skip)]` (or `#[blocking(skip)]`) from a
/// method's attributes; true if it was there.
pub(crate) fn take_skip(attrs: &mut Vec<Attribute>) -> syn::Result<bool> {
    let mut skip = false;
    let mut error = None;
    attrs.retain(|a| {
        let is_ours = a
            .path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "blocking");
        if !is_ours {
            return true;
        }
        match a.parse_args::<Ident>() {
            Ok(i) if i == "skip" => skip = true,
            _ => {
                error = Some(syn::Error::new_spanned(
                    a,
                    "inside a #[bridge::blocking] impl block, a method takes only \
                     `#[bridge::blocking(skip)]` (no twin for this method); put the other \
                     options on the impl block",
                ))
            }
        }
        false
    });
    match error {
        Some(e) => Err(e),
        None => Ok(skip),
    }
}

/// Another `#[bridge::blocking(..)]` still to expand on the same block, if
/// any: the path it is written with, to mark methods for it.
pub(crate) fn stacked(attrs: &[Attribute]) -> Option<Path> {
    attrs.iter().find_map(|a| {
        let last = a.path().segments.last()?;
        (last.ident == "blocking").then(|| a.path().clone())
    })
}

/// How a method's output relates to the impl's type, for the wrapper:
/// constructors return the wrapper in the same shape.
pub(crate) enum Shape {
    /// Anything else: forwarded as it is.
    Other,
    /// `Self` (or the type written out).
    SelfType,
    /// `Result<Self, E>`, `io::Result<Self>`, `Option<Self>`.
    Mapped,
}

pub(crate) fn output_shape(output: &syn::ReturnType, self_ty: &Type) -> Shape {
    let syn::ReturnType::Type(_, ty) = output else {
        return Shape::Other;
    };
    if is_self(ty, self_ty) {
        return Shape::SelfType;
    }
    match first_arg_of_result_or_option(ty) {
        Some(first) if is_self(first, self_ty) => Shape::Mapped,
        _ => Shape::Other,
    }
}

fn first_arg_of_result_or_option(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" && last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// For a [`Shape::Mapped`] output: the same type with its `Self` argument
/// replaced by `Self` (which, in the wrapper's impl, is the wrapper).
pub(crate) fn map_first_arg_to_self(ty: &mut Type) {
    if let Type::Path(p) = ty {
        if let Some(PathArguments::AngleBracketed(args)) =
            p.path.segments.last_mut().map(|s| &mut s.arguments)
        {
            if let Some(GenericArgument::Type(t)) = args.args.first_mut() {
                *t = syn::parse_quote!(Self);
            }
        }
    }
}

/// Replaces `Self` in types with the impl's type: in the wrapper's impl,
/// `Self` would mean the wrapper.
pub(crate) struct ReplaceSelf<'a>(pub(crate) &'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.leading_colon.is_none() {
                let first_is_self = p.path.segments.first().is_some_and(|s| s.ident == "Self");
                if first_is_self && p.path.segments.len() == 1 {
                    *ty = self.0.clone();
                    return;
                }
                if first_is_self {
                    // `Self::Assoc` -> `<Client>::Assoc`.
                    let rest: Punctuated<_, Token![::]> =
                        p.path.segments.iter().skip(1).cloned().collect();
                    p.qself = Some(QSelf {
                        lt_token: Default::default(),
                        ty: Box::new(self.0.clone()),
                        position: 0,
                        as_token: None,
                        gt_token: Default::default(),
                    });
                    p.path.leading_colon = Some(Default::default());
                    p.path.segments = rest;
                }
            }
        }
        visit_mut::visit_type_mut(self, ty);
    }
}

/// The generated name of a twin: `get` + `_blocking`.
pub(crate) fn twin_name(name: &Ident, suffix: &str) -> Ident {
    use syn::ext::IdentExt;
    format_ident!("{}{}", name.unraw(), suffix, span = name.span())
}

/// Errors gathered over a whole impl block, so that one expansion reports
/// every culprit at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `item` followed by the errors, if any.
    pub(crate) fn emit_with(self, item: impl ToTokens) -> TokenStream {
        let mut out = item.into_token_stream();
        if let Some(e) = self.0 {
            out.extend(e.to_compile_error());
        }
        out
    }
}
