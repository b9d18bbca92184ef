//! Rate limiting per client: a token bucket of `RATE_LIMIT_PER_MINUTE` requests for each
//! client address, refilled evenly over the minute. The client is the TCP peer, or, when
//! the peer is one of `TRUSTED_PROXIES` (the reverse proxy), the `X-Forwarded-For` address
//! nearest it that is no trusted proxy: the first and only one behind a proxy that
//! replaces the header, and never one the client wrote itself behind a proxy that appends.
//! From anyone else the header is ignored, so a client cannot pick its own bucket.
//!
//! An IPv6 client counts by its /64. The buckets live in this process: several API
//! processes behind one proxy each allow the rate, so a client may reach it once per
//! process.
//!
//! `/` (to a client that wants JSON; the web page's home counts), `/health`, `/health/deep`,
//! `/metrics` and the web page's built-in files under `/static/` are never limited, nor
//! CORS preflights. A limited request answers 429 `RATE_LIMITED` with `Retry-After`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use crate::AppState;
use crate::error::Error;

/// The default of `RATE_LIMIT_PER_MINUTE`.
pub const DEFAULT_PER_MINUTE: u32 = 60;

/// How the API limits its clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per minute per client; 0 turns limiting off.
    pub per_minute: u32,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
}

/// Paths never limited: the service's own probes. The web page's built-in files under
/// `/static/` are not limited either: they cost nothing and a page loads several.
const EXEMPT: [&str; 4] = ["/", "/health", "/health/deep", "/metrics"];

/// How many checks pass between two sweeps of idle buckets.
const SWEEP_EVERY: u64 = 4_096;

/// The buckets of every client seen recently.
pub struct RateLimiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpNet>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("trusted", &self.trusted).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// The limiter `config` asks for; `None` when limiting is off.
    pub fn new(config: &RateLimitConfig) -> Option<RateLimiter> {
        let per_minute = NonZeroU32::new(config.per_minute)?;
        Some(RateLimiter {
            buckets: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            trusted: config.trusted_proxies.clone(),
            checks: AtomicU64::new(0),
        })
    }

    /// The bucket of the client a request comes from. From a peer that is no trusted
    /// proxy, the peer. From a trusted proxy, `X-Forwarded-For` read from the right (the
    /// proxy's end): the first address that is not itself a trusted proxy. With a proxy
    /// that replaces the header that is its only address, the first; with one that
    /// appends, whatever the client wrote further left is never reached. A header that
    /// does not parse there leaves the request in the proxy's own bucket. Without a peer (a
    /// request handled in-process), every such request shares one bucket.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
        let Some(peer) = peer else {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        };
        let mut client = unmapped(peer);
        if !self.is_trusted(client) {
            return bucket_key(client);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(unmapped) else { break };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        bucket_key(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Takes a token from `client`'s bucket, or answers in how many seconds one is due.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Buckets full again are forgotten, so memory follows the recent clients.
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
        }
        self.buckets.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:10.0.0.1`) is that IPv4 address.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The bucket's key for a client's address: an IPv6 address counts by its /64, the block
/// one client is given, so that cycling through a block's addresses buys nothing.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)))
        }
        v4 => v4,
    }
}

fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The middleware: counts the request against its client's bucket, or answers 429.
pub(crate) async fn rate_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(limiter) = state.rate_limiter() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    // `/` is a cheap probe to a JSON client, but the home page to a browser.
    let probe = EXEMPT.contains(&path) && !(path == "/" && crate::web::wants_html(req.headers()));
    if probe || path.starts_with("/static/") || is_preflight(&req) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = limiter.client(peer, req.headers());
    match limiter.check(client) {
        Ok(()) => next.run(req).await,
        Err(seconds) => {
            tracing::info!(client.ip = %client, retry_after = seconds, "rate limited");
            Error::RateLimited(seconds.max(1)).into_response()
        }
    }
}

/// Reads `TRUSTED_PROXIES`: addresses or networks (`10.0.0.0/8`), comma separated.
pub fn parse_trusted_proxies(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "TRUSTED_PROXIES must list addresses or networks such as 10.0.0.5,172.16.0.0/12 (got \"{item}\")"
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, trusted: &str) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            per_minute,
            trusted_proxies: parse_trusted_proxies(trusted).unwrap(),
        })
        .unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let l = limiter(5, "10.0.0.0/8, 192.168.1.7");
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let client: IpAddr = "198.51.100.4".parse().unwrap();
        assert_eq!(l.client(Some(proxy), &forwarded("198.51.100.4, 10.1.2.3")), client);
        assert_eq!(l.client(Some(stranger), &forwarded("198.51.100.4")), stranger);
        assert_eq!(l.client(Some(proxy), &forwarded("not an address")), proxy);
        // Behind a proxy that appends, what the client wrote itself is never believed.
        let appended = forwarded("6.6.6.6, 198.51.100.4");
        assert_eq!(l.client(Some(proxy), &appended), client);
        let two_proxies = forwarded("6.6.6.6, 198.51.100.4, 10.9.9.9");
        assert_eq!(l.client(Some(proxy), &two_proxies), client);
        let mut two_lines = forwarded("6.6.6.6");
        two_lines.append("x-forwarded-for", "198.51.100.4".parse().unwrap());
        assert_eq!(l.client(Some(proxy), &two_lines), client);
        assert_eq!(l.client(Some(proxy), &HeaderMap::new()), proxy);
        let mapped: IpAddr = "::ffff:192.168.1.7".parse().unwrap();
        assert_eq!(l.client(Some(mapped), &forwarded("198.51.100.4")), client);
        // A trusted proxy named by its own IPv6 address is trusted, not its block.
        let v6 = limiter(5, "2001:db8::5");
        let proxy6: IpAddr = "2001:db8::5".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::6".parse().unwrap();
        assert_eq!(v6.client(Some(proxy6), &forwarded("198.51.100.4")), client);
        assert_ne!(v6.client(Some(neighbour), &forwarded("198.51.100.4")), client);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let l = limiter(1, "");
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let key = l.client(Some(a), &HeaderMap::new());
        assert_eq!(key, l.client(Some(b), &HeaderMap::new()));
        assert!(l.check(key).is_ok());
        assert!(l.check(l.client(Some(b), &HeaderMap::new())).is_err());
        assert!(l.check(l.client(Some(other), &HeaderMap::new())).is_ok());
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = limiter(3, "");
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        // One token comes back every 20 s at 3 a minute.
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(l.check(b).is_ok());
    }

    #[test]
    fn bad_proxy_lists_name_the_variable() {
        assert!(
            parse_trusted_proxies("10.0.0.1, nowhere").unwrap_err().contains("TRUSTED_PROXIES")
        );
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert_eq!(parse_trusted_proxies("::1,10.0.0.0/8").unwrap().len(), 2);
    }

    #[test]
    fn limiting_off_makes_no_limiter() {
        assert!(RateLimiter::new(&RateLimitConfig::default()).is_none());
    }
}
