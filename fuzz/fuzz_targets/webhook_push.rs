//! Any delivery body and signature header: checking the signature and reading the push
//! never panic; a push that is read names a normalised repository and a branch, and
//! lists every path it added among the paths it changed.
#![no_main]

use isocrates_api::routes::webhooks::{PushEvent, check_signature, read_push};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8])| {
    let (header, body) = input;
    let _ = check_signature(b"fuzz-secret", Some(header), body);
    if let Ok(PushEvent::Push(push)) = read_push(body) {
        assert!(!push.repo_url.is_empty());
        assert!(!push.repo_url.ends_with('/') && !push.repo_url.ends_with(".git"));
        if let Some(changed) = &push.changed_paths {
            assert!(push.added_paths.iter().all(|a| changed.contains(a)));
        }
    }
});
