//! `GET /metrics` in Prometheus' text format: the requests this process answered, by
//! route and status, with a latency histogram; and, read from the database at each
//! scrape, the runs and steps by state, the live workers, the documents, and what the
//! models spent, by provider and model.
//!
//! Request counts are this process's own (as Prometheus expects of each target); the
//! database figures are the deployment's, the same from every process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How recently a worker must have reported to count as alive.
const WORKER_ALIVE_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Requests {
    /// (method, route, status) → answered.
    answered: BTreeMap<(String, String, u16), u64>,
    /// route → latency.
    latency: BTreeMap<String, Histogram>,
}

/// The request figures of this process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
}

impl Metrics {
    /// Counts one answered request. `route` is the matched route's template
    /// (`/api/docs/{doc_id}`), so that the label's values stay few.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Clients choose the method: any other than the usual ones is counted as one, so
        // that made-up methods cannot grow the figures without bound.
        const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
        let method = if KNOWN.contains(&method) { method } else { "OTHER" };
        let mut r = self.requests.lock().expect("the metrics are never poisoned");
        *r.answered.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        let h = r.latency.entry(route.to_string()).or_default();
        let seconds = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    fn render_requests(&self, out: &mut String) {
        let r = self.requests.lock().expect("the metrics are never poisoned");
        family(out, "isocrates_http_requests_total", "counter", "HTTP requests answered.");
        for ((method, route, status), n) in &r.answered {
            let labels = format!(
                "method=\"{}\",route=\"{}\",status=\"{status}\"",
                escape(method),
                escape(route)
            );
            let _ = writeln!(out, "isocrates_http_requests_total{{{labels}}} {n}");
        }
        family(
            out,
            "isocrates_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request.",
        );
        for (route, h) in &r.latency {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "isocrates_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "isocrates_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "isocrates_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "isocrates_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `GET /metrics`. A figure the database cannot give is left out (and logged), so that a
/// scrape still shows the rest.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    state.metrics().render_requests(&mut out);

    match state.engine().status_counts().await {
        Ok(counts) => {
            family(&mut out, "isocrates_runs", "gauge", "Runs by status.");
            for (status, n) in &counts.runs {
                let _ = writeln!(out, "isocrates_runs{{status=\"{}\"}} {n}", escape(status));
            }
            family(&mut out, "isocrates_run_steps", "gauge", "Step attempts by status.");
            for (status, n) in &counts.steps {
                let _ = writeln!(out, "isocrates_run_steps{{status=\"{}\"}} {n}", escape(status));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the runs cannot be counted"),
    }
    match state.engine().queue_health(WORKER_ALIVE_WITHIN).await {
        Ok(queue) => {
            family(
                &mut out,
                "isocrates_workers",
                "gauge",
                "Workers that reported in the last minute.",
            );
            let _ = writeln!(out, "isocrates_workers {}", queue.workers);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the workers cannot be counted"),
    }
    match state.storage().document_count().await {
        Ok(n) => {
            family(&mut out, "isocrates_documents", "gauge", "Documents not in the trash.");
            let _ = writeln!(out, "isocrates_documents {n}");
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the documents cannot be counted"),
    }
    match state.engine().spend_by_model().await {
        Ok(spend) => {
            family(&mut out, "isocrates_llm_calls_total", "counter", "Model calls answered.");
            for s in &spend {
                let _ =
                    writeln!(out, "isocrates_llm_calls_total{{{}}} {}", model_labels(s), s.calls);
            }
            family(
                &mut out,
                "isocrates_llm_tokens_total",
                "counter",
                "Model tokens, sent (in) and received (out).",
            );
            for s in &spend {
                let labels = model_labels(s);
                let _ = writeln!(
                    out,
                    "isocrates_llm_tokens_total{{{labels},direction=\"in\"}} {}",
                    s.tokens_in
                );
                let _ = writeln!(
                    out,
                    "isocrates_llm_tokens_total{{{labels},direction=\"out\"}} {}",
                    s.tokens_out
                );
            }
            family(
                &mut out,
                "isocrates_llm_cost_usd_total",
                "counter",
                "What the model calls cost, in US dollars.",
            );
            for s in &spend {
                let _ = writeln!(
                    out,
                    "isocrates_llm_cost_usd_total{{{}}} {}",
                    model_labels(s),
                    s.cost_usd
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the spending cannot be read"),
    }
    render_month(&state, &mut out).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// This month's spending by model, and the caps it is held to. Spending by repository is
/// left to `/api/jobs/spending`, which keeps to the caller's grants: `/metrics` asks for
/// none.
async fn render_month(state: &AppState, out: &mut String) {
    let month = isocrates_engine::month_of(&isocrates_storage::Timestamp::now());
    let lines = match state.engine().spending_since(&month).await {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: this month's spending cannot be read");
            return;
        }
    };
    let mut by_model: std::collections::BTreeMap<(&str, &str), f64> = Default::default();
    for line in lines.iter().filter(|l| l.month == month) {
        let spend = &line.spend;
        *by_model.entry((spend.provider.as_str(), spend.model.as_str())).or_default() +=
            spend.cost_usd;
    }
    family(
        out,
        "isocrates_llm_month_cost_usd",
        "gauge",
        "What the model calls of this calendar month (UTC) cost, in US dollars.",
    );
    for ((provider, model), cost) in &by_model {
        let _ = writeln!(
            out,
            "isocrates_llm_month_cost_usd{{provider=\"{}\",model=\"{}\"}} {cost}",
            escape(provider),
            escape(model)
        );
    }
    let Some(budgets) = state.docgen().map(|d| d.settings.budgets).filter(|b| b.any()) else {
        return;
    };
    family(out, "isocrates_llm_budget_usd", "gauge", "The caps on model spending, in US dollars.");
    for (name, cap) in [
        ("per_run", budgets.per_run_usd),
        ("per_month", budgets.per_month_usd),
        ("per_repo_per_month", budgets.per_repo_month_usd),
    ] {
        if let Some(cap) = cap {
            let _ = writeln!(out, "isocrates_llm_budget_usd{{budget=\"{name}\"}} {cap}");
        }
    }
}

fn model_labels(s: &isocrates_engine::ModelSpend) -> String {
    format!("provider=\"{}\",model=\"{}\"", escape(&s.provider), escape(&s.model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.observe("GET", "/api/docs/{doc_id}", 200, Duration::from_millis(3));
        m.observe("GET", "/api/docs/{doc_id}", 404, Duration::from_millis(70));
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains(
            "isocrates_http_requests_total{method=\"GET\",route=\"/api/docs/{doc_id}\",status=\"404\"} 1"
        ));
        let bucket = |le: &str| {
            format!(
                "isocrates_http_request_duration_seconds_bucket{{route=\"/api/docs/{{doc_id}}\",le=\"{le}\"}}"
            )
        };
        assert!(out.contains(&format!("{} 1", bucket("0.005"))), "{out}");
        assert!(out.contains(&format!("{} 1", bucket("0.05"))), "{out}");
        assert!(out.contains(&format!("{} 2", bucket("0.1"))), "{out}");
        assert!(out.contains(&format!("{} 2", bucket("+Inf"))), "{out}");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        for made_up in ["FOO", "BAR", "BAZ"] {
            m.observe(made_up, "unmatched", 405, Duration::from_millis(1));
        }
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains("method=\"OTHER\",route=\"unmatched\",status=\"405\"} 3"), "{out}");
        assert!(!out.contains("FOO"));
    }
}
