//! LLM providers behind one trait: text in, text and token counts out.
//!
//! Boundary: this crate knows nothing of storage or workflows. Only the request and
//! response shapes are defined so far; the clients follow.

use serde::{Deserialize, Serialize};

/// The two model tiers a documentation run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Plans the pages of a repository.
    Planner,
    /// Writes one page.
    Writer,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens sent.
    pub input_tokens: u64,
    /// Tokens received.
    pub output_tokens: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;

    /// The sum of two counts.
    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn usage_adds_up() {
        let total = Usage { input_tokens: 3, output_tokens: 4 }
            + Usage { input_tokens: 1, output_tokens: 2 };
        assert_eq!(total, Usage { input_tokens: 4, output_tokens: 6 });
    }
}
