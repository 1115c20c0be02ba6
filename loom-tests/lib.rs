//! Loom models live in `tests/`; run them with `RUSTFLAGS="--cfg bridge_loom" cargo test -p loom-tests --release`.
