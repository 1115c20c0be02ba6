//! Where the benches that measure outside criterion's groups write their
//! JSON, beside criterion's own output, for `benches/report.py`.

/// Writes `json` as `name` into criterion's directory (`$CRITERION_HOME`,
/// else `<target dir>/criterion`), and says where, or why not.
pub fn write(name: &str, json: &str) {
    let dir = match std::env::var_os("CRITERION_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => std::path::PathBuf::from(
            std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()),
        )
        .join("criterion"),
    };
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    match std::fs::write(&path, json) {
        Ok(()) => println!("written: {}", path.display()),
        Err(e) => println!("could not write {}: {e}", path.display()),
    }
}
