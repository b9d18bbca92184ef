//! The documentation workflow: clone, analyze, plan, write and link, version-priority
//! check, publish.
//!
//! Boundary: the only crate that knows what a documentation run is; it reaches the
//! database only through `isocrates-storage` and the engine. [`docgen`] holds what the
//! engine and the jobs API need of a run: its input, its keys, the facts read off it, and
//! the workflow. [`prompts`] holds what each model call says: the templates of `prompts/`
//! and the data each receives. [`git`] fetches and reads commits; [`github`] asks GitHub's API
//! what git would take longer to find out.

pub mod analyze;
pub mod docgen;
pub mod git;
pub mod github;
pub mod pipeline;
pub mod prompts;

pub use isocrates_engine::RunStatus;

/// The steps of a documentation run, in order.
pub const STEPS: [&str; 7] =
    ["clone", "analyze", "check_early", "plan", "write", "check_final", "publish"];

#[cfg(test)]
mod tests {
    #[test]
    fn steps_start_with_clone_and_end_with_publish() {
        assert_eq!(super::STEPS.first(), Some(&"clone"));
        assert_eq!(super::STEPS.last(), Some(&"publish"));
    }
}
