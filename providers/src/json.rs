//! Structured answers: the schema is sent where the provider enforces one; the answer's
//! JSON is found whether it comes bare, fenced in markdown or inside prose; common slips
//! (trailing commas, smart quotes, comments) are repaired; and an answer that still does
//! not parse, or breaks the caller's rules, is asked again with the error shown to the
//! model.

use serde_json::Value;

use crate::guard::{Call, Llm};
use crate::{CallError, Request};

/// Why no usable JSON came back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    /// A call failed.
    #[error("{0}")]
    Call(#[from] CallError),
    /// Every answer was unusable.
    #[error("the model did not answer the JSON asked for after {tries} tries: {last_error}")]
    Invalid {
        /// How many answers were read.
        tries: u32,
        /// What was wrong with the last one.
        last_error: String,
    },
}

/// Finds the JSON value in a model's answer: the whole text, each fenced block, and each
/// outermost balanced `{...}` or `[...]`; the longest that parses wins, and only when none
/// parses as written are they tried after [`repair`].
pub fn extract(text: &str) -> Result<Value, String> {
    let mut candidates = vec![text.trim().to_string()];
    candidates.extend(fenced(text));
    candidates.extend(balanced(text));
    let longest = |fix: fn(&str) -> String| {
        candidates
            .iter()
            .filter_map(|c| serde_json::from_str::<Value>(&fix(c)).ok().map(|v| (c.len(), v)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, value)| value)
    };
    if let Some(value) = longest(|c| c.to_string()).or_else(|| longest(repair)) {
        return Ok(value);
    }
    let error = serde_json::from_str::<Value>(text.trim()).err().map(|e| e.to_string());
    Err(format!("no JSON value found in the answer ({})", error.unwrap_or_default()))
}

/// The contents of every ```` ``` ```` fenced block, in order.
fn fenced(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        // Skip the info string (`json`) up to the end of the line.
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let body = &after[body_start..];
        let Some(end) = body.find("```") else { break };
        blocks.push(body[..end].trim().to_string());
        rest = &body[end + 3..];
    }
    blocks
}

/// The outermost balanced objects and arrays in the text, in order (prose such as "[1]"
/// or a reasoning preamble can come before the JSON), strings taken into account; at most
/// 32 of them.
fn balanced(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut covered = 0;
    for (start, c) in text.char_indices() {
        if spans.len() == 32 {
            break;
        }
        if start < covered || (c != '{' && c != '[') {
            continue;
        }
        if let Some(span) = balanced_from(text, start) {
            covered = start + span.len();
            spans.push(span);
        }
    }
    spans
}

fn balanced_from(text: &str, start: usize) -> Option<String> {
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    for (i, c) in text[start..].char_indices() {
        if in_string {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + i + c.len_utf8()].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// Fixes the slips models make in JSON: smart quotes used as delimiters, `//` line
/// comments, and commas before a closing bracket. The text inside proper strings is left as
/// it is.
pub fn repair(text: &str) -> String {
    let is_curly = |c: char| c == '\u{201c}' || c == '\u{201d}';
    let mut out = String::with_capacity(text.len());
    // Inside a string, and whether a curly quote opened it (and so closes it).
    let (mut in_string, mut curly, mut escaped) = (false, false, false);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped && !curly => in_string = false,
                c if is_curly(c) && curly => {
                    in_string = false;
                    out.push('"');
                    i += 1;
                    continue;
                }
                '"' if curly => {
                    // A straight quote inside a curly-quoted string is text.
                    out.push_str("\\\"");
                    i += 1;
                    continue;
                }
                _ => escaped = false,
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '"' => {
                (in_string, curly) = (true, false);
                out.push(c);
            }
            c if is_curly(c) => {
                (in_string, curly) = (true, true);
                out.push('"');
            }
            '\u{2018}' | '\u{2019}' => out.push('\''),
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}' | ']')) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Asks `llm` for JSON following `schema` (named `name`) that `check` accepts, at most
/// `tries` times: each unusable answer is shown to the model with what was wrong with it.
/// Returns the value and every call made, for their tokens and cost.
pub async fn complete_json(
    llm: &Llm,
    request: &Request,
    (name, schema): (&str, &Value),
    check: impl Fn(&Value) -> Result<(), String>,
    tries: u32,
) -> Result<(Value, Vec<Call>), (JsonError, Vec<Call>)> {
    let mut calls = Vec::new();
    let mut asked = request.clone();
    if llm.provider().enforces_schema() {
        asked.schema = Some((name.to_string(), schema.clone()));
    }
    let original_prompt = asked.prompt.clone();
    let mut last_error = String::new();
    for attempt in 1..=tries.max(1) {
        let call = match llm.complete(&asked).await {
            Ok(call) => call,
            Err(e) => return Err((JsonError::Call(e), calls)),
        };
        let text = call.reply.text.clone();
        calls.push(call);
        match extract(&text).and_then(|value| check(&value).map(|()| value)) {
            Ok(value) => return Ok((value, calls)),
            Err(error) => {
                tracing::warn!(attempt, error = %error, "the model's JSON is not usable; asking again");
                last_error = error;
                let shown: String = text.chars().take(4000).collect();
                asked.prompt = format!(
                    "{original_prompt}\n\nYour previous answer could not be used:\n{last_error}\n\n\
                     Your previous answer was:\n{shown}\n\nAnswer again with only the JSON \
                     value, following the schema:\n{schema}"
                );
            }
        }
    }
    Err((JsonError::Invalid { tries: tries.max(1), last_error }, calls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_found_bare_fenced_or_in_prose() {
        let want = json!({"pages": [{"title": "A"}]});
        for text in [
            r#"{"pages": [{"title": "A"}]}"#,
            "Here is the plan:\n```json\n{\"pages\": [{\"title\": \"A\"}]}\n```\nDone.",
            "Sure! {\"pages\": [{\"title\": \"A\"}]} Hope it helps.",
            "```\n{\"pages\": [{\"title\": \"A\",},],}\n```",
            "{\u{201c}pages\u{201d}: [{\u{201c}title\u{201d}: \u{201c}A\u{201d}}]}",
            "{\"pages\": [ // the only page\n{\"title\": \"A\"}]}",
        ] {
            assert_eq!(extract(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn repair_leaves_strings_alone() {
        assert_eq!(
            repair(r#"{"a": "x, }", "b": "http://c",}"#),
            r#"{"a": "x, }", "b": "http://c"}"#
        );
    }

    #[test]
    fn brackets_in_prose_before_the_json_are_passed_over() {
        let text = "As noted in [1], the plan is:\n{\"pages\": [\"A\"]}";
        assert_eq!(extract(text).unwrap(), json!({"pages": ["A"]}));
    }

    #[test]
    fn curly_quotes_inside_a_proper_string_stay() {
        let text = "{\"title\": \"The \u{201c}core\u{201d}\",}";
        assert_eq!(extract(text).unwrap(), json!({"title": "The \u{201c}core\u{201d}"}));
    }

    #[test]
    fn text_without_json_says_so() {
        assert!(extract("I cannot help with that.").unwrap_err().contains("no JSON"));
    }
}
