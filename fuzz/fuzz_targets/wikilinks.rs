//! Any markdown: the wikilink parser never panics, and every link it finds was written in
//! the text, outside code, with a target that is not empty.
#![no_main]

use isocrates_storage::links::parse_wikilinks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|markdown: &str| {
    for link in parse_wikilinks(markdown) {
        assert!(!link.target.trim().is_empty(), "an empty target from {markdown:?}");
        assert!(markdown.contains("[["), "a link without brackets in {markdown:?}");
    }
});
