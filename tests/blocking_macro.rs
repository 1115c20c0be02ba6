//! API.md "The blocking twin, generated": `#[bridge::blocking]` in both
//! forms (suffix twins and the wrapper type), every method shape it keeps,
//! the twins called from every context, and (in `tests/ui`) the compile
//! errors for its misuse.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::fmt::Display;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, Stream, StreamExt};

use common::{tcp_and_timer, Ctx};

/// Whether the calling async code runs on the worker loop.
fn on_worker_loop() -> bool {
    bridge::get_running_loop().is_ok_and(|lp| lp.id() == bridge::worker_loop().id())
}

// ---- the suffix form: every method shape ----

/// A key-value store with an async API, and (generated) a blocking one.
struct Store {
    name: String,
    map: HashMap<String, String>,
}

#[bridge::blocking]
impl Store {
    /// An async constructor (no receiver): its twin is `open_blocking`.
    pub async fn open(name: &str) -> Self {
        tokio::task::yield_now().await;
        Store {
            name: name.to_owned(),
            map: HashMap::new(),
        }
    }

    /// Borrows `self` and `key`.
    pub async fn get(&self, key: &str) -> Option<String> {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        self.map.get(key).cloned()
    }

    /// `&mut self`, and an argument borrowed for the future's whole life.
    pub async fn set(&mut self, key: String, value: &str) {
        tokio::task::yield_now().await;
        self.map.insert(key, value.to_owned());
    }

    /// The output borrows from `self`.
    pub async fn name(&self) -> &str {
        tokio::task::yield_now().await;
        &self.name
    }

    /// By value.
    pub async fn into_len(self) -> usize {
        tokio::task::yield_now().await;
        self.map.len()
    }

    /// By value, `mut`.
    pub async fn into_len_plus(mut self, extra: usize) -> usize {
        tokio::task::yield_now().await;
        self.map.retain(|_, _| true);
        self.map.len() + extra
    }

    /// A receiver the wrapper could not forward; the suffix form keeps it.
    pub async fn boxed_len(self: Box<Self>) -> usize {
        self.map.len()
    }

    /// Another: `Arc<Self>`.
    pub async fn shared_name(self: Arc<Self>) -> String {
        tokio::task::yield_now().await;
        self.name.clone()
    }

    /// Arguments written as patterns, bound to plain names in the twin.
    pub async fn patterns(&self, (a, b): (u32, u32), mut n: u32, _: bool, [x, y]: [u32; 2]) -> u32 {
        tokio::task::yield_now().await;
        n += 1;
        a + b + n + x + y
    }

    /// A type parameter inferred from an argument, an unsized one, a `where`.
    pub async fn show<T>(&self, value: &T) -> String
    where
        T: Display + Sync + ?Sized,
    {
        tokio::task::yield_now().await;
        format!("{}={value}", self.name)
    }

    /// A type parameter the caller must name (nothing to infer it from).
    pub async fn size_of<T: Send>(&self) -> usize {
        std::mem::size_of::<T>()
    }

    /// A const parameter and an `impl Trait` argument.
    pub async fn sum<const N: usize>(
        &self,
        values: [u32; N],
        label: impl AsRef<str> + Send,
    ) -> String {
        tokio::task::yield_now().await;
        format!("{}:{}", label.as_ref(), values.iter().sum::<u32>())
    }

    /// Real I/O and a timer: the worker loop's reactor drives them.
    pub async fn echo(&self, n: u32) -> u32 {
        tcp_and_timer(n).await
    }

    /// Reports where it runs.
    pub async fn where_am_i(&self) -> bool {
        on_worker_loop()
    }

    /// Its panic resumes in the caller of the twin.
    pub async fn fail(&self) -> u8 {
        tokio::task::yield_now().await;
        panic!("store {} failed", self.name)
    }

    /// `pub(crate)` keeps its visibility.
    pub(crate) async fn crate_visible(&self) -> u8 {
        7
    }

    /// An `unsafe` method: the twin is `unsafe` too.
    ///
    /// # Safety
    ///
    /// None needed; it only shows that `unsafe` is kept.
    pub async unsafe fn raw_len(&self) -> usize {
        self.map.len()
    }

    /// Compiled in: its twin too.
    #[cfg(test)]
    pub async fn configured(&self) -> u8 {
        1
    }

    /// Compiled out: so is its twin (which would not compile without it).
    #[cfg(not(test))]
    pub async fn configured_out(&self) -> u8 {
        2
    }

    /// Lint levels are kept on the twin.
    #[allow(clippy::needless_lifetimes)]
    pub async fn lifetimes<'a>(&'a self, key: &'a str) -> Option<&'a String> {
        self.map.get(key)
    }

    /// Skipped: its future is not `Send` (an `Rc` across an `.await`).
    #[bridge::blocking(skip)]
    pub async fn local_only(&self) -> usize {
        let rc = Rc::new(self.map.len());
        tokio::task::yield_now().await;
        *rc
    }

    /// Not `pub`: no twin (tests/ui/private_method_has_no_twin.rs).
    async fn private_len(&self) -> usize {
        self.map.len()
    }

    /// Not `async`: no twin.
    pub fn len_now(&self) -> usize {
        self.map.len()
    }

    /// Parameters named like what the generated code uses are passed on.
    pub async fn named_like_internals(
        &self,
        future: u32,
        call_blocking: u32,
        future_must_be_send: u32,
        arg5: u32,
        (a, b): (u32, u32),
    ) -> u32 {
        future + call_blocking + future_must_be_send + arg5 + a + b
    }
}

fn store_with(pairs: &[(&str, &str)]) -> Store {
    let mut s = Store::open_blocking("s");
    for (k, v) in pairs {
        s.set_blocking((*k).to_owned(), v);
    }
    s
}

/// Every suffix twin, called from wherever `_ctx` is.
fn suffix_twins(_ctx: Ctx) {
    let mut store = Store::open_blocking("main");
    let value = String::from("v1");
    store.set_blocking("k".to_owned(), &value);
    assert_eq!(store.get_blocking("k"), Some("v1".to_owned()));
    assert_eq!(store.get_blocking("missing"), None);
    assert_eq!(store.name_blocking(), "main");
    assert_eq!(store.patterns_blocking((1, 2), 3, true, [10, 20]), 37);
    assert_eq!(store.show_blocking("text"), "main=text");
    assert_eq!(store.show_blocking(&42), "main=42");
    assert_eq!(store.size_of_blocking::<u64>(), 8);
    assert_eq!(store.sum_blocking([1, 2, 3], "sum"), "sum:6");
    assert_eq!(store.sum_blocking::<0>([], String::from("none")), "none:0");
    assert_eq!(store.echo_blocking(5), 5);
    assert!(
        store.where_am_i_blocking(),
        "the twin runs on the worker loop"
    );
    assert_eq!(store.crate_visible_blocking(), 7);
    // SAFETY: `raw_len` has no safety requirement.
    assert_eq!(unsafe { store.raw_len_blocking() }, 1);
    assert_eq!(store.configured_blocking(), 1);
    assert_eq!(store.lifetimes_blocking("k"), Some(&"v1".to_owned()));
    assert_eq!(store.len_now(), 1);
    assert_eq!(store.private_len_direct(), 1);
    assert_eq!(
        store.named_like_internals_blocking(1, 10, 100, 1000, (10_000, 100_000)),
        111_111
    );

    let store = Arc::new(store);
    assert_eq!(store.clone().shared_name_blocking(), "main");
    let store = Arc::try_unwrap(store).ok().expect("one owner left");
    assert_eq!(Box::new(store_with(&[("a", "1")])).boxed_len_blocking(), 1);
    assert_eq!(
        store_with(&[("a", "1"), ("b", "2")]).into_len_plus_blocking(10),
        12
    );
    assert_eq!(store.into_len_blocking(), 1);
}
every_context!(suffix_everywhere, suffix_twins);

impl Store {
    /// Keeps the private method used (it has no twin to call).
    fn private_len_direct(&self) -> usize {
        bridge::call_blocking(self.private_len())
    }
}

#[test]
fn a_panic_in_the_async_method_resumes_in_the_caller_of_the_twin() {
    let store = Store::open_blocking("p");
    let panic = catch_unwind(AssertUnwindSafe(|| store.fail_blocking())).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .expect("the original panic payload");
    assert_eq!(message, "store p failed");
    // The store was only borrowed: still usable after the panic.
    assert_eq!(store.name_blocking(), "p");
}

#[test]
fn a_skipped_method_keeps_its_async_form_only() {
    let store = store_with(&[("a", "1"), ("b", "2")]);
    let rt = common::current_rt();
    assert_eq!(rt.block_on(store.local_only()), 2);
}

// ---- another suffix, a generic impl ----

struct Cell<T> {
    value: Mutex<T>,
}

#[bridge::blocking(suffix = "_sync")]
impl<T> Cell<T>
where
    T: Clone + Send,
{
    /// A generic async constructor.
    pub async fn new(value: T) -> Self {
        Cell {
            value: Mutex::new(value),
        }
    }

    /// Replaces the value, returning the old one.
    pub async fn replace(&self, value: T) -> T {
        tokio::task::yield_now().await;
        std::mem::replace(&mut *self.value.lock().unwrap(), value)
    }

    /// A method generic over more than the impl.
    pub async fn map<U: Send, F: FnOnce(T) -> U + Send>(&self, f: F) -> U {
        f(self.value.lock().unwrap().clone())
    }
}

fn suffix_and_generics(_ctx: Ctx) {
    let cell = Cell::new_sync(vec![1, 2]);
    assert_eq!(cell.replace_sync(vec![3]), vec![1, 2]);
    assert_eq!(cell.map_sync(|v| v.len()), 1);
    let text = Cell::<String>::new_sync("a".to_owned());
    assert_eq!(text.map_sync(|s| s + "b"), "ab");
}
every_context!(suffix_sync_everywhere, suffix_and_generics);

// ---- crate = path ----

/// A stand-in for the crate that counts the calls made through it: the
/// generated code must call `call_blocking` through the path given.
mod counting {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub static CALLS: AtomicUsize = AtomicUsize::new(0);

    pub fn call_blocking<F>(fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        CALLS.fetch_add(1, Ordering::SeqCst);
        ::bridge::call_blocking(fut)
    }
}

/// The crate under another name, as with `package = "bridge"` renames.
mod reexport {
    pub(crate) use ::bridge as renamed;
}

struct Counted(u32);

#[bridge::blocking(crate = crate::counting)]
impl Counted {
    pub async fn double(&self) -> u32 {
        self.0 * 2
    }
}

struct Renamed(u32);

#[bridge::blocking(crate = crate::reexport::renamed, suffix = "_now")]
impl Renamed {
    pub async fn triple(&self) -> u32 {
        self.0 * 3
    }
}

#[test]
fn crate_path_is_the_one_the_generated_code_calls() {
    let before = counting::CALLS.load(Ordering::SeqCst);
    assert_eq!(Counted(4).double_blocking(), 8);
    assert_eq!(Counted(5).double_blocking(), 10);
    assert_eq!(counting::CALLS.load(Ordering::SeqCst) - before, 2);
    assert_eq!(Renamed(2).triple_now(), 6);
}

// ---- the wrapper form ----

/// The async client a library writes.
#[derive(Clone, Debug, Default)]
pub struct Client {
    base: u32,
    log: Arc<Mutex<Vec<String>>>,
}

#[bridge::blocking(wrapper = BlockingClient)]
impl Client {
    /// The value a constant forwards.
    pub const LIMIT: u32 = 100;

    /// A sync constructor returning `Self`.
    pub fn new(base: u32) -> Self {
        Client {
            base,
            log: Arc::default(),
        }
    }

    /// A sync constructor returning `Result<Self, E>`.
    pub fn checked(base: u32) -> Result<Self, String> {
        if base <= Self::LIMIT {
            Ok(Client::new(base))
        } else {
            Err(format!("base {base} is over {}", Self::LIMIT))
        }
    }

    /// A sync constructor returning `Option<Self>`, the type spelled out.
    pub fn parse(text: &str) -> Option<Client> {
        text.parse().ok().map(Client::new)
    }

    /// An async constructor returning `Self`.
    pub async fn connect(base: u32) -> Self {
        tokio::task::yield_now().await;
        Client::new(base)
    }

    /// An async constructor returning `io::Result<Self>` (a `Result` alias).
    pub async fn try_connect(base: u32) -> io::Result<Client> {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        Client::checked(base).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// An async constructor returning `Option<Self>`.
    pub async fn find(base: u32) -> Option<Self> {
        tokio::task::yield_now().await;
        (base % 2 == 0).then(|| Client::new(base))
    }

    /// `&self`, borrowed arguments.
    pub async fn add(&self, n: &u32) -> u32 {
        tokio::task::yield_now().await;
        self.base + n
    }

    /// `&mut self`.
    pub async fn rebase(&mut self, base: u32) -> u32 {
        tokio::task::yield_now().await;
        std::mem::replace(&mut self.base, base)
    }

    /// Borrowed output.
    pub async fn log_handle(&self) -> &Arc<Mutex<Vec<String>>> {
        &self.log
    }

    /// Arguments as patterns.
    pub async fn record(&self, (kind, what): (&str, &str)) {
        tokio::task::yield_now().await;
        self.log.lock().unwrap().push(format!("{kind}:{what}"));
    }

    /// By value: consumes the client.
    pub async fn finish(self) -> Vec<String> {
        tokio::task::yield_now().await;
        self.log.lock().unwrap().clone()
    }

    /// Generic, with a `where` clause.
    pub async fn describe<T>(&self, value: T) -> String
    where
        T: Display + Send,
    {
        format!("{}+{value}", self.base)
    }

    /// Real I/O on the worker loop.
    pub async fn echo(&self, n: u32) -> u32 {
        tcp_and_timer(n).await
    }

    /// Reports where it runs.
    pub async fn where_am_i(&self) -> bool {
        on_worker_loop()
    }

    /// A sync method, forwarded as it is.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// `Self` in an argument: the async type in the wrapper too.
    pub fn same_base(&self, other: &Self) -> bool {
        self.base == other.base
    }

    /// A builder method returning `Self`: the wrapper returns the wrapper.
    pub fn with_base(mut self, base: u32) -> Self {
        self.base = base;
        self
    }

    /// An associated function, not a constructor: forwarded as it is.
    pub fn add_pair((a, b): (u32, u32)) -> u32 {
        a + b
    }

    /// Compiled out, and so is its forwarding.
    #[cfg(not(test))]
    pub async fn gone(&self) -> u8 {
        0
    }

    /// Not `pub`: not forwarded (tests/ui/private_method_has_no_twin.rs).
    fn private_base(&self) -> u32 {
        self.base
    }

    /// Keeps `private_base` used.
    pub fn base_via_private(&self) -> u32 {
        self.private_base()
    }
}

fn wrapper_methods(_ctx: Ctx) {
    // Constructors in every shape, sync and async, return the wrapper.
    let client: BlockingClient = BlockingClient::new(1);
    let checked: Result<BlockingClient, String> = BlockingClient::checked(2);
    assert_eq!(checked.unwrap().base(), 2);
    assert_eq!(
        BlockingClient::checked(200).unwrap_err(),
        "base 200 is over 100"
    );
    let parsed: Option<BlockingClient> = BlockingClient::parse("3");
    assert_eq!(parsed.unwrap().base(), 3);
    assert!(BlockingClient::parse("x").is_none());
    let connected: BlockingClient = BlockingClient::connect(4);
    assert_eq!(connected.base(), 4);
    let tried: io::Result<BlockingClient> = BlockingClient::try_connect(5);
    assert_eq!(tried.unwrap().base(), 5);
    let err = BlockingClient::try_connect(500).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let found: Option<BlockingClient> = BlockingClient::find(6);
    assert_eq!(found.unwrap().base(), 6);
    assert!(BlockingClient::find(7).is_none());

    // Async methods, blocking, same names.
    let n = 10;
    assert_eq!(client.add(&n), 11);
    let mut client = client;
    assert_eq!(client.rebase(20), 1);
    assert_eq!(client.add(&n), 30);
    client.record(("get", "key"));
    assert_eq!(client.log_handle().lock().unwrap().len(), 1);
    assert_eq!(client.describe("x"), "20+x");
    assert_eq!(client.echo(9), 9);
    assert!(
        client.where_am_i(),
        "the wrapper's method runs on the worker loop"
    );

    // Forwarded sync methods, constants, associated functions.
    assert_eq!(client.base(), 20);
    assert!(client.same_base(&Client::new(20)));
    assert_eq!(BlockingClient::LIMIT, 100);
    assert_eq!(BlockingClient::add_pair((2, 3)), 5);
    assert_eq!(client.base_via_private(), 20);
    let rebased: BlockingClient = client.clone().with_base(21);
    assert_eq!(rebased.base(), 21);

    // The wrapper's own API.
    assert_eq!(client.inner().base, 20);
    let copy = client.clone();
    assert!(format!("{copy:?}").starts_with("BlockingClient { inner: Client { base: 20"));
    assert_eq!(BlockingClient::default().base(), 0);
    let back: Client = copy.into();
    assert_eq!(back.base, 20);
    let again = BlockingClient::from(back);
    assert_eq!(again.into_inner().base, 20);

    // By value, last.
    assert_eq!(client.finish(), vec!["get:key".to_owned()]);
}
every_context!(wrapper_everywhere, wrapper_methods);

/// A type without `Clone`, `Debug` or `Default`: its wrapper still compiles
/// (those impls of the wrapper just do not apply), with a visibility given.
struct Plain(u32);

#[bridge::blocking(wrapper = pub(crate) BlockingPlain)]
impl Plain {
    pub async fn get(&self) -> u32 {
        self.0
    }
}

/// A generic type with a lifetime, wrapped.
#[derive(Clone)]
struct Borrowing<'a, T> {
    items: &'a [T],
}

#[bridge::blocking(wrapper = BlockingBorrowing)]
impl<'a, T: Sync + Clone + Send> Borrowing<'a, T> {
    pub fn new(items: &'a [T]) -> Self {
        Borrowing { items }
    }

    pub async fn first(&self) -> Option<T> {
        tokio::task::yield_now().await;
        self.items.first().cloned()
    }

    pub async fn items(&self) -> &'a [T] {
        self.items
    }
}

#[test]
fn wrapper_of_a_plain_or_generic_type() {
    assert_eq!(BlockingPlain::from(Plain(3)).get(), 3);
    let data = vec!["a".to_owned(), "b".to_owned()];
    let b = BlockingBorrowing::new(&data);
    assert_eq!(b.first(), Some("a".to_owned()));
    assert_eq!(b.items().len(), 2);
    assert_eq!(
        b.clone().first(),
        Some("a".to_owned()),
        "Clone, as Borrowing is"
    );
}

#[test]
fn wrapper_shares_one_client_across_threads() {
    let client = BlockingClient::new(0);
    let done = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..8 {
            let client = client.clone();
            let done = done.clone();
            s.spawn(move || {
                for i in 0..20 {
                    client.record(("t", &format!("{t}-{i}")));
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 8);
    assert_eq!(client.log_handle().lock().unwrap().len(), 8 * 20);
}

/// A `#[cfg]` on the block after the attribute: the wrapper and its impls
/// get it too (else they would name methods that are compiled out).
struct Configured;

#[bridge::blocking(wrapper = BlockingConfigured)]
#[cfg(not(test))]
impl Configured {
    pub async fn get(&self) -> u8 {
        1
    }
}

#[bridge::blocking(wrapper = BlockingConfiguredIn)]
#[cfg(test)]
impl Configured {
    pub async fn get_in(&self) -> u8 {
        2
    }
}

#[test]
fn a_cfg_on_the_block_applies_to_the_wrapper() {
    assert_eq!(BlockingConfiguredIn::from(Configured).get_in(), 2);
}

// ---- both forms on one block ----

#[derive(Clone)]
struct Both(u32);

#[bridge::blocking(wrapper = BlockingBoth)]
#[bridge::blocking]
impl Both {
    pub async fn get(&self) -> u32 {
        self.0
    }

    /// Skipped by both forms, whichever expands first.
    #[bridge::blocking(skip)]
    pub async fn skipped(&self) -> u32 {
        self.0
    }
}

#[derive(Clone)]
struct BothReversed(u32);

#[bridge::blocking]
#[bridge::blocking(wrapper = BlockingBothReversed)]
impl BothReversed {
    pub async fn get(&self) -> u32 {
        self.0
    }

    /// Skipped by both forms, whichever expands first.
    #[bridge::blocking(skip)]
    pub async fn skipped(&self) -> u32 {
        self.0
    }
}

/// The twins are left out of the wrapper, whichever attribute comes first.
trait HasGetBlocking {
    fn get_blocking(&self) -> u32;
}

impl HasGetBlocking for BlockingBoth {
    fn get_blocking(&self) -> u32 {
        // Resolves to this trait method only because the wrapper has no
        // inherent `get_blocking` (an inherent one would be chosen first).
        1000 + self.get()
    }
}

impl HasGetBlocking for BlockingBothReversed {
    fn get_blocking(&self) -> u32 {
        1000 + self.get()
    }
}

/// A skipped method is left out of both forms, whichever comes first:
/// these trait methods are found only because neither form generated an
/// inherent method of the name.
trait HasSkipped {
    fn skipped(&self) -> u32;
    fn skipped_blocking(&self) -> u32;
}

impl HasSkipped for BlockingBoth {
    fn skipped(&self) -> u32 {
        2000
    }
    fn skipped_blocking(&self) -> u32 {
        3000
    }
}

impl HasSkipped for BlockingBothReversed {
    fn skipped(&self) -> u32 {
        2000
    }
    fn skipped_blocking(&self) -> u32 {
        3000
    }
}

trait HasSkippedTwin {
    fn skipped_blocking(&self) -> u32;
}

impl HasSkippedTwin for Both {
    fn skipped_blocking(&self) -> u32 {
        3000
    }
}

impl HasSkippedTwin for BothReversed {
    fn skipped_blocking(&self) -> u32 {
        3000
    }
}

#[test]
fn both_forms_stack_on_one_block_in_either_order() {
    assert_eq!(Both(1).get_blocking(), 1);
    assert_eq!(BlockingBoth::from(Both(2)).get(), 2);
    assert_eq!(BlockingBoth::from(Both(2)).get_blocking(), 1002);
    assert_eq!(BothReversed(3).get_blocking(), 3);
    assert_eq!(BlockingBothReversed::from(BothReversed(4)).get(), 4);
    assert_eq!(
        BlockingBothReversed::from(BothReversed(4)).get_blocking(),
        1004
    );
    assert_eq!(Both(1).skipped_blocking(), 3000);
    assert_eq!(BothReversed(1).skipped_blocking(), 3000);
    assert_eq!(BlockingBoth::from(Both(1)).skipped(), 2000);
    assert_eq!(BlockingBothReversed::from(BothReversed(1)).skipped(), 2000);
    assert_eq!(BlockingBoth::from(Both(1)).skipped_blocking(), 3000);
    assert_eq!(
        BlockingBothReversed::from(BothReversed(1)).skipped_blocking(),
        3000
    );
    let rt = common::current_rt();
    assert_eq!(rt.block_on(Both(5).skipped()), 5);
    assert_eq!(rt.block_on(BothReversed(6).skipped()), 6);
}

// ---- streams: the blocking iterator twin ----

/// A paginated list API: each method returns a stream that owns what it
/// needs (`Send + 'static`), so its twin (suffix form) and its method of the
/// same name (wrapper form) hand sync code a `BlockingIter`.
#[derive(Clone, Debug)]
pub struct Catalog {
    items: Arc<Vec<String>>,
}

#[bridge::blocking(wrapper = BlockingCatalog)]
#[bridge::blocking]
impl Catalog {
    /// A catalog of `items`, in this order.
    pub fn new(items: &[&str]) -> Self {
        Catalog {
            items: Arc::new(items.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    /// The items starting with `prefix`, fetched a page of 3 at a time, each
    /// page over real TCP and a timer (the worker loop's reactor drives them).
    pub fn list(
        &self,
        prefix: &str,
    ) -> impl futures::Stream<Item = io::Result<String>> + Send + 'static {
        let matching: Vec<String> = (self.items.iter())
            .filter(|item| item.starts_with(prefix))
            .cloned()
            .collect();
        let pages: Vec<Vec<String>> = matching.chunks(3).map(<[String]>::to_vec).collect();
        stream::iter(pages)
            .then(|page| async move {
                let len = u32::try_from(page.len()).expect("a page of 3");
                assert_eq!(tcp_and_timer(len).await, len);
                stream::iter(page.into_iter().map(Ok))
            })
            .flatten()
    }

    /// Reports, per item, whether the stream is polled on the worker loop.
    pub fn places(&self) -> impl Stream<Item = bool> + Send + 'static {
        stream::iter(0..3).then(|_| async {
            tokio::task::yield_now().await;
            on_worker_loop()
        })
    }

    /// No receiver; a type parameter and a `where` clause.
    pub fn repeat<T>(value: T, times: usize) -> impl Stream<Item = T> + Send + 'static
    where
        T: Clone + Send + 'static,
    {
        stream::repeat(value).take(times)
    }

    /// By value.
    pub fn into_items(self) -> impl Stream<Item = String> + Send {
        let items = Arc::unwrap_or_clone(self.items);
        stream::iter(items)
    }

    /// A panic in the stream resumes in the caller of `next`.
    pub fn failing(&self) -> impl Stream<Item = u32> + Send + 'static {
        stream::iter(0..3).map(|n| match n {
            2 => panic!("catalog failed at {n}"),
            n => n,
        })
    }

    /// Compiled in: its twin too.
    #[cfg(test)]
    pub fn configured(&self) -> impl Stream<Item = u8> + Send + 'static {
        stream::iter([1, 2])
    }

    /// Compiled out: so is its twin (which would not compile without it).
    #[cfg(not(test))]
    pub fn configured_out(&self) -> impl Stream<Item = u8> + Send + 'static {
        stream::iter([3])
    }

    /// Skipped: its items are not `Send`, so it has no blocking form.
    #[bridge::blocking(skip)]
    pub fn local(&self) -> impl Stream<Item = Rc<String>> + '_ {
        stream::iter(self.items.iter().cloned().map(Rc::new))
    }

    /// Neither `async` nor a stream: forwarded as it is.
    pub fn size(&self) -> usize {
        self.items.len()
    }
}

fn catalog() -> Catalog {
    // 10 items start with "a" (4 pages), among others.
    Catalog::new(&[
        "a0", "b0", "a1", "a2", "c0", "a3", "a4", "a5", "b1", "a6", "a7", "a8", "a9",
    ])
}

fn a_items() -> Vec<String> {
    (0..10).map(|i| format!("a{i}")).collect()
}

/// Every stream twin and wrapper method, iterated from wherever `_ctx` is.
fn stream_twins(_ctx: Ctx) {
    let catalog = catalog();
    let listed: Vec<String> = (catalog.list_blocking("a"))
        .collect::<io::Result<_>>()
        .expect("list");
    assert_eq!(listed, a_items(), "every item, in order, across 4 pages");
    assert_eq!(catalog.list_blocking("z").count(), 0);
    assert_eq!(
        catalog.places_blocking().collect::<Vec<_>>(),
        [true; 3],
        "the stream is polled on the worker loop"
    );
    assert_eq!(
        Catalog::repeat_blocking("r", 3).collect::<Vec<_>>(),
        ["r"; 3]
    );
    assert_eq!(catalog.configured_blocking().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(catalog.size(), 13);
    assert_eq!(catalog.clone().into_items_blocking().count(), 13);

    let blocking = BlockingCatalog::from(catalog);
    let listed: Vec<String> = (blocking.list("a"))
        .collect::<io::Result<_>>()
        .expect("list");
    assert_eq!(listed, a_items());
    assert_eq!(blocking.places().collect::<Vec<_>>(), [true; 3]);
    assert_eq!(BlockingCatalog::repeat(7u8, 2).collect::<Vec<_>>(), [7, 7]);
    assert_eq!(blocking.configured().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(blocking.size(), 13);
    assert_eq!(blocking.into_items().last().as_deref(), Some("a9"));
}
every_context!(stream_everywhere, stream_twins);

#[test]
fn a_stream_method_keeps_its_async_form() {
    let blocking = BlockingCatalog::from(catalog());
    let rt = common::current_rt();
    assert_eq!(rt.block_on(blocking.inner().list("b").count()), 2);
    // The skipped method, whose items are not `Send`.
    assert_eq!(rt.block_on(blocking.inner().local().count()), 13);
}

#[test]
fn a_panic_in_the_stream_resumes_in_the_caller_of_next() {
    for mut iter in [
        catalog().failing_blocking(),
        BlockingCatalog::from(catalog()).failing(),
    ] {
        assert_eq!(iter.next(), Some(0));
        assert_eq!(iter.next(), Some(1));
        let panic = catch_unwind(AssertUnwindSafe(|| iter.next())).unwrap_err();
        let message = panic
            .downcast_ref::<String>()
            .expect("the original panic payload");
        assert_eq!(message, "catalog failed at 2");
    }
}

/// The iterator is lazy: a page is fetched only as the caller reads on, and
/// dropping the iterator stops the stream.
#[test]
fn a_stream_twin_stops_where_its_caller_stops() {
    let mut iter = catalog().list_blocking("a");
    assert_eq!(
        iter.next().transpose().expect("page 1"),
        Some("a0".to_owned())
    );
    drop(iter);
    let firsts: Vec<String> = (BlockingCatalog::from(catalog()).list("a"))
        .take(4)
        .collect::<io::Result<_>>()
        .expect("pages 1 and 2");
    assert_eq!(firsts, a_items()[..4]);
}

// ---- compile errors ----

/// The diagnostics of misuse: each `tests/ui/*.rs` must fail to compile
/// with the message in its `.stderr` (`TRYBUILD=overwrite` regenerates them
/// after a deliberate change; review the diff).
#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
