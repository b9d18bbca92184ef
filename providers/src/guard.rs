//! [`Llm`]: one provider behind what every call needs, whatever the backend. At most
//! `max_concurrency` requests are in flight; a request that takes longer than the timeout
//! fails as a timeout; rate limits, server errors, timeouts, lost connections and garbled
//! answers are tried again, after the delay the provider asked for (`Retry-After`) or an
//! exponential one; after `breaker_threshold` failures in a row the circuit opens and calls
//! fail at once for `breaker_pause`, then one probe is let through. Each call reports its
//! tokens and cost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::{CallError, Prices, Provider, Reply, Request, Usage};

/// How calls are bounded and retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// How long one request may take.
    pub timeout: Duration,
    /// Tries after the first, for failures that can pass.
    pub max_retries: u32,
    /// The delay before the first retry when the provider names none; doubled each time.
    pub base_delay: Duration,
    /// The longest delay between tries, whatever the provider asks.
    pub max_delay: Duration,
    /// Failures in a row that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open before a probe.
    pub breaker_pause: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrency: 4,
            timeout: Duration::from_secs(120),
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            breaker_threshold: 5,
            breaker_pause: Duration::from_secs(30),
        }
    }
}

/// One successful call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The kind of provider that answered (`openai`, `ollama`, ...).
    pub provider: &'static str,
    /// The answer.
    pub reply: Reply,
    /// What it cost: as the provider reported, else at the configured prices, else 0.
    pub cost_usd: f64,
    /// Tries it took, from 1.
    pub tries: u32,
    /// From the first try to the answer.
    pub latency: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        failures: u32,
    },
    /// The pause is over and one probe has been in flight since `since`.
    Probing {
        since: Instant,
    },
}

/// A provider with its limits, retries, circuit breaker and totals.
#[derive(Debug)]
pub struct Llm {
    provider: Arc<dyn Provider>,
    limits: Limits,
    prices: Option<Prices>,
    slots: Semaphore,
    breaker: Mutex<Breaker>,
    totals: Mutex<(Usage, f64)>,
}

impl Llm {
    /// Guards `provider` with `limits`, pricing its calls at `prices` when it reports no
    /// cost of its own.
    pub fn new(provider: Arc<dyn Provider>, limits: Limits, prices: Option<Prices>) -> Llm {
        Llm {
            provider,
            slots: Semaphore::new(limits.max_concurrency.max(1)),
            limits,
            prices,
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            totals: Mutex::new((Usage::default(), 0.0)),
        }
    }

    /// The provider behind it.
    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// The prices its calls are costed at when the provider reports no cost.
    pub fn prices(&self) -> Option<Prices> {
        self.prices
    }

    /// The longest one call may take when every try times out and every retry waits as
    /// long as it may, not counting the wait for a free slot.
    pub fn longest_call(&self) -> Duration {
        let retries = self.limits.max_retries;
        self.limits.timeout.saturating_mul(retries.saturating_add(1))
            + self.limits.max_delay.saturating_mul(retries)
    }

    /// The tokens and cost of every call so far.
    pub fn totals(&self) -> (Usage, f64) {
        self.totals.lock().map(|t| *t).unwrap_or_default()
    }

    /// Sends `request`, retrying what can pass, until it answers or the tries run out.
    ///
    /// A rate limit whose `Retry-After` is longer than `max_delay` is returned at once with
    /// its delay, for the caller to schedule, rather than tried again too early. When the
    /// circuit opens during the retries, the failure that opened it is returned.
    pub async fn complete(&self, request: &Request) -> Result<Call, CallError> {
        let started = Instant::now();
        let mut tries = 0;
        let mut last_error: Option<CallError> = None;
        loop {
            tries += 1;
            let probe = match self.admit() {
                Ok(probe) => probe,
                Err(open) => return Err(last_error.unwrap_or(open)),
            };
            let result = {
                let _slot = self.slots.acquire().await.map_err(|_| CallError::NoModel)?;
                match tokio::time::timeout(self.limits.timeout, self.provider.call(request)).await {
                    Ok(result) => result,
                    Err(_) => Err(CallError::Timeout(self.limits.timeout.as_secs())),
                }
            };
            let outcome = match &result {
                Ok(_) => Outcome::Healthy,
                Err(error) if counts_against_provider(error) => Outcome::Unwell,
                Err(_) => Outcome::Reachable,
            };
            self.record(outcome, probe);
            match result {
                Ok(reply) => {
                    let cost = reply
                        .reported_cost_usd
                        .or_else(|| self.prices.map(|p| p.cost(reply.usage)))
                        .unwrap_or(0.0);
                    if let Ok(mut totals) = self.totals.lock() {
                        totals.0 = totals.0 + reply.usage;
                        totals.1 += cost;
                    }
                    return Ok(Call {
                        provider: self.provider.kind().as_str(),
                        reply,
                        cost_usd: cost,
                        tries,
                        latency: started.elapsed(),
                    });
                }
                Err(error) => {
                    if !error.is_retryable() || tries > self.limits.max_retries {
                        return Err(error);
                    }
                    if error.retry_after().is_some_and(|wait| wait > self.limits.max_delay) {
                        return Err(error);
                    }
                    let exponential =
                        self.limits.base_delay.saturating_mul(1 << (tries - 1).min(16));
                    let delay =
                        error.retry_after().unwrap_or(exponential).min(self.limits.max_delay);
                    tracing::warn!(
                        provider = self.provider.kind().as_str(),
                        model = self.provider.model(),
                        try_number = tries,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %error,
                        "model call failed; trying again"
                    );
                    last_error = Some(error);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Lets a call through unless the circuit is open. The first call after the pause is
    /// the probe (`Ok(true)`); others fail fast until its outcome is known. A probe that
    /// gave no outcome within a timeout and a pause (its caller went away) is given up, and
    /// the next call probes instead.
    fn admit(&self) -> Result<bool, CallError> {
        let Ok(mut breaker) = self.breaker.lock() else { return Ok(false) };
        let now = Instant::now();
        match *breaker {
            Breaker::Closed { .. } => Ok(false),
            Breaker::Open { until, .. } if now >= until => {
                *breaker = Breaker::Probing { since: now };
                Ok(true)
            }
            Breaker::Open { until, failures } => Err(self.open(failures, until - now)),
            Breaker::Probing { since }
                if now.duration_since(since) > self.limits.timeout + self.limits.breaker_pause =>
            {
                *breaker = Breaker::Probing { since: now };
                Ok(true)
            }
            Breaker::Probing { since } => Err(self.open(
                self.limits.breaker_threshold,
                (since + self.limits.timeout + self.limits.breaker_pause)
                    .saturating_duration_since(now),
            )),
        }
    }

    fn open(&self, failures: u32, wait: Duration) -> CallError {
        CallError::CircuitOpen {
            provider: self.provider.kind().as_str().to_string(),
            failures,
            wait,
        }
    }

    /// Records the outcome of a call for the circuit breaker. While a probe is out, only the
    /// probe's outcome counts: calls admitted before the circuit opened do not decide it.
    fn record(&self, outcome: Outcome, probe: bool) {
        let Ok(mut breaker) = self.breaker.lock() else { return };
        if matches!(*breaker, Breaker::Probing { .. } | Breaker::Open { .. }) && !probe {
            return;
        }
        let failures = match (*breaker, outcome) {
            // Any answer at all, refusals included, ends a run of failures.
            (_, Outcome::Healthy | Outcome::Reachable) => {
                *breaker = Breaker::Closed { failures: 0 };
                return;
            }
            (Breaker::Closed { failures }, Outcome::Unwell) => failures + 1,
            (_, Outcome::Unwell) => self.limits.breaker_threshold,
        };
        *breaker = if failures >= self.limits.breaker_threshold {
            tracing::warn!(
                provider = self.provider.kind().as_str(),
                failures,
                pause_s = self.limits.breaker_pause.as_secs(),
                "model calls paused after repeated failures"
            );
            Breaker::Open { until: Instant::now() + self.limits.breaker_pause, failures }
        } else {
            Breaker::Closed { failures }
        };
    }
}

/// What a call's outcome says of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It answered.
    Healthy,
    /// It answered with a refusal (a bad key, a bad request, a rate limit): it is up.
    Reachable,
    /// It failed, timed out or could not be reached.
    Unwell,
}

/// Failures that say the provider is unwell, as opposed to a refused request or a rate
/// limit it asked us to respect.
fn counts_against_provider(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Server { .. }
            | CallError::Timeout(_)
            | CallError::Connection(_)
            | CallError::Malformed(_)
    )
}
