//! `POST /api/docs/ask/`: a question answered by the writer model from the documents the
//! caller may read, found by full-text search on the question's words and given to the
//! `ask` prompt. Without a model, or when the model fails, the answer is a sentence that
//! says so (with the documents found as sources), never an error status.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use isocrates_storage::search::SearchQuery;
use isocrates_workflows::prompts::{AskContext, AskDocument};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::MaybeUser;
use crate::error::Error;
use crate::extract::{Json, bounded};

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(ask))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/docs/ask", post(ask))
}

/// The longest question accepted, in characters.
const MAX_QUESTION: usize = 500;
/// The characters of each document given to the model.
const EXCERPT_CHARS: usize = 4_000;
/// The longest answer, in tokens.
const MAX_ANSWER_TOKENS: u32 = 1_200;

/// Words a question is made of that find nothing by themselves.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "of", "on", "or", "our", "should", "that", "the", "this", "to", "we",
    "what", "when", "where", "which", "who", "why", "with", "you",
];

#[derive(Deserialize, utoipa::ToSchema)]
struct AskBody {
    /// The question, 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    question: String,
    /// How many documents the answer may draw on.
    #[serde(default = "five")]
    #[schema(minimum = 1, maximum = 10, default = 5)]
    top_k: i64,
}

fn five() -> i64 {
    5
}

#[derive(Serialize, utoipa::ToSchema)]
struct Source {
    id: String,
    title: String,
    path: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Answer {
    answer: String,
    sources: Vec<Source>,
    model: Option<String>,
}

/// The search that finds documents for a question: its meaningful words, any of them.
fn retrieval_query(question: &str) -> String {
    let mut words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() > 1 && !STOP_WORDS.contains(&w.as_str()))
        .collect();
    words.dedup();
    words.join(" OR ")
}

/// A question answered from the documents the caller may read, citing them; with no model,
/// a failing one or nothing found, the answer is a sentence saying so.
#[utoipa::path(post, path = "/api/docs/ask", tag = "search", request_body = AskBody,
    responses((status = 200, description = "The answer and its sources", body = Answer)))]
async fn ask(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Json(body): Json<AskBody>,
) -> Result<axum::Json<Answer>, Error> {
    let question = body.question.trim().to_string();
    let length = question.chars().count();
    if length == 0 || length > MAX_QUESTION {
        return Err(Error::invalid(
            "question",
            format!("the question must be 1 to {MAX_QUESTION} characters"),
        ));
    }
    let top_k = bounded("top_k", body.top_k, 1, 10)?;
    let query = SearchQuery {
        text: retrieval_query(&question),
        limit: top_k,
        path_prefix: None,
        keywords: Vec::new(),
        date_from: None,
        date_to: None,
        scope: caller.scope(),
    };
    let hits =
        if query.text.is_empty() { Vec::new() } else { state.storage().search(&query).await? };
    let sources: Vec<Source> = hits
        .iter()
        .map(|h| Source {
            id: h.document.id.clone(),
            title: h.document.title.clone(),
            path: h.document.path.clone(),
        })
        .collect();
    let assistant = state.assistant();
    let Some(model) = &assistant.model else {
        return Ok(axum::Json(Answer {
            answer: "Asking needs a language model, and none is configured (LLM_PROVIDER is \
                     static): the documents below match the question's words."
                .into(),
            sources,
            model: None,
        }));
    };
    let model_name = Some(model.provider().model().to_string());
    if hits.is_empty() {
        return Ok(axum::Json(Answer {
            answer: "No document you may read matches the question: try other words, or search \
                     the documentation."
                .into(),
            sources,
            model: model_name,
        }));
    }
    let context = AskContext {
        question,
        documents: hits
            .iter()
            .map(|h| AskDocument {
                title: h.document.title.clone(),
                path: h.document.path.clone(),
                excerpt: h.document.content.chars().take(EXCERPT_CHARS).collect(),
            })
            .collect(),
    };
    let mut request = match assistant.prompts.ask(&context) {
        Ok(rendered) => rendered.into_request(),
        Err(e) => {
            tracing::error!(error = %e, "the ask prompt did not render");
            return Ok(axum::Json(Answer {
                answer: "The question could not be put to the model: its prompt template is \
                         broken (see the server log)."
                    .into(),
                sources,
                model: model_name,
            }));
        }
    };
    request.max_tokens = Some(MAX_ANSWER_TOKENS);
    let answer = match model.complete(&request).await {
        Ok(call) => call.reply.text,
        Err(error) => {
            tracing::warn!(%error, "the model did not answer a question");
            "The model could not answer just now (the server log says why); the documents \
             below match the question."
                .to_string()
        }
    };
    Ok(axum::Json(Answer { answer, sources, model: model_name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_is_searched_by_its_meaningful_words() {
        assert_eq!(retrieval_query("How do I deploy the shop?"), "deploy OR shop");
        assert_eq!(retrieval_query("What is it?"), "");
    }
}
