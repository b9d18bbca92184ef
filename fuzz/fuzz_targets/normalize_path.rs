//! Any path: normalising never panics, is idempotent, and leaves no empty segment and no
//! slash at either end.
#![no_main]

use isocrates_storage::ids::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    let once = normalize_path(path);
    assert_eq!(normalize_path(&once), once, "not idempotent on {path:?}");
    assert!(!once.starts_with('/') && !once.ends_with('/'), "{once:?}");
    assert!(once.is_empty() || once.split('/').all(|s| !s.trim().is_empty()), "{once:?}");
});
