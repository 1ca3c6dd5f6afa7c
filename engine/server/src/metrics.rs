//! `GET /metrics`: the server's load and history in Prometheus's text format (0.0.4), written
//! here: the scheduler's queue, rows and tokens (`Scheduler::stats`), the time to the first
//! token, requests per route, refusals by reason, and connections. The teacher's token reads
//! it, or anyone when the server runs with `--metrics-public`; a student gets 403.
//!
//! Labels take only values the server chose (routes as declared, known methods), so a client
//! cannot grow the output with made-up paths.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k2_engine::serving::Histogram;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::AppState;

/// Why the server refused or dropped a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Over its request rate (`--rate-per-minute`).
    Rate,
    /// Over its scaffold runs at once (`--runs-per-student`).
    Runs,
    /// Over its chat completions at once (`--chats-per-student`).
    Chats,
    /// The server's open connections were at `--max-connections`.
    Connections,
    /// Headers too slow, or a keep-alive connection idle (`--header-timeout-s`).
    HeaderTimeout,
    /// A request body stopped arriving (`--body-timeout-s`).
    BodyTimeout,
    /// The client stopped reading the answer (`--write-timeout-s`).
    WriteTimeout,
}

impl Rejection {
    const ALL: [Rejection; 7] = [
        Rejection::Rate,
        Rejection::Runs,
        Rejection::Chats,
        Rejection::Connections,
        Rejection::HeaderTimeout,
        Rejection::BodyTimeout,
        Rejection::WriteTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejection::Rate => "rate",
            Rejection::Runs => "runs_per_client",
            Rejection::Chats => "chats_per_client",
            Rejection::Connections => "max_connections",
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::WriteTimeout => "write_timeout",
        }
    }
}

/// The server's own counters (the scheduler keeps its own).
pub struct Metrics {
    /// Whether `/metrics` needs no token.
    pub public: bool,
    /// Requests by (route, method, status).
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    rejections: [AtomicU64; Rejection::ALL.len()],
    open_connections: AtomicU64,
    accepted_connections: AtomicU64,
}

impl Metrics {
    pub fn new(public: bool) -> Self {
        Metrics {
            public,
            requests: Mutex::new(BTreeMap::new()),
            rejections: Default::default(),
            open_connections: AtomicU64::new(0),
            accepted_connections: AtomicU64::new(0),
        }
    }

    pub fn reject(&self, why: Rejection) {
        let i = Rejection::ALL.iter().position(|&r| r == why).unwrap_or(0);
        self.rejections[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted connection as open until the returned guard drops.
    pub fn connection_opened(self: &std::sync::Arc<Self>) -> OpenConnection {
        self.accepted_connections.fetch_add(1, Ordering::Relaxed);
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            metrics: self.clone(),
        }
    }

    fn count_request(&self, route: Option<&str>, method: &Method, status: u16) {
        // Unrouted paths (the UI's files, 404s) share one label.
        let route = route.unwrap_or("other").to_owned();
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            Method::PATCH => "PATCH",
            _ => "other",
        };
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route, method, status)).or_insert(0) += 1;
    }

    pub(crate) fn render_rejections(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "k2_rejections_total",
            "counter",
            "Clients refused or dropped by the server's own limits, by reason (queue_full: the scheduler's queue).",
        );
        for (why, count) in Rejection::ALL.iter().zip(&self.rejections) {
            let _ = writeln!(
                out,
                "k2_rejections_total{{reason=\"{}\"}} {}",
                why.label(),
                count.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// An open connection, counted until dropped.
pub struct OpenConnection {
    metrics: std::sync::Arc<Metrics>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware over every route: counts each answer by route, method and status.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    state
        .metrics
        .count_request(route.as_deref(), &method, response.status().as_u16());
    response
}

/// Route middleware of `/metrics`: the token is asked for unless the metrics are public.
pub async fn access(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.metrics.public {
        return next.run(request).await;
    }
    crate::auth::require_token(State(state), request, next).await
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>, request: Request) -> Response {
    if let Some(identity) = request.extensions().get::<Identity>() {
        if !identity.is_teacher() && !state.metrics.public {
            return ApiError::forbidden("the server's metrics are the teacher's").into_response();
        }
    }
    let mut response = render(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn render(state: &AppState) -> String {
    let load = state.scheduler.load();
    let stats = state.scheduler.stats();
    let config = state.scheduler.config();
    let metrics = &state.metrics;
    let mut out = String::new();

    family(
        &mut out,
        "k2_model_info",
        "gauge",
        "The model this server runs.",
    );
    let _ = writeln!(
        out,
        "k2_model_info{{model=\"{}\"}} 1",
        label_value(&state.model_id)
    );
    gauge(
        &mut out,
        "k2_queue_waiting",
        "Requests waiting for rows.",
        load.waiting as f64,
    );
    gauge(
        &mut out,
        "k2_queue_max_waiting",
        "Requests that may wait before the queue refuses (--max-waiting).",
        config.max_waiting as f64,
    );
    gauge(
        &mut out,
        "k2_active_requests",
        "Requests being decoded.",
        load.active_requests as f64,
    );
    gauge(
        &mut out,
        "k2_active_rows",
        "Rows being decoded (a request with n completions takes n).",
        load.active_rows as f64,
    );
    gauge(
        &mut out,
        "k2_max_rows",
        "Rows decoded together at most (--max-rows).",
        config.max_rows as f64,
    );
    counter(
        &mut out,
        "k2_prompt_tokens_total",
        "Prompt tokens of admitted requests.",
        stats.prompt_tokens as f64,
    );
    counter(
        &mut out,
        "k2_reused_prompt_tokens_total",
        "Prompt tokens taken from the prefix cache instead of computed.",
        load.reused_prompt_tokens as f64,
    );
    counter(
        &mut out,
        "k2_generated_tokens_total",
        "Tokens generated, over all rows.",
        stats.generated_tokens as f64,
    );
    counter(
        &mut out,
        "k2_decode_seconds_total",
        "Seconds the scheduler spent in batch steps (prefill and decode); generated tokens over this is the throughput while busy.",
        stats.step_seconds,
    );
    histogram(
        &mut out,
        "k2_time_to_first_token_seconds",
        "Time from a request's submission to its first generated token.",
        &stats.first_token,
    );

    family(
        &mut out,
        "k2_http_requests_total",
        "counter",
        "HTTP requests answered, by route, method and status.",
    );
    {
        let requests = metrics.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, method, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "k2_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                label_value(route)
            );
        }
    }
    out.push_str(&metrics.render_rejections());
    let _ = writeln!(
        out,
        "k2_rejections_total{{reason=\"queue_full\"}} {}",
        stats.refused_busy
    );
    gauge(
        &mut out,
        "k2_open_connections",
        "HTTP connections open now.",
        metrics.open_connections.load(Ordering::Relaxed) as f64,
    );
    counter(
        &mut out,
        "k2_connections_total",
        "HTTP connections accepted since the start.",
        metrics.accepted_connections.load(Ordering::Relaxed) as f64,
    );
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help_text(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {}", number(value));
}

fn counter(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", number(value));
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    family(out, name, "histogram", help);
    for (bound, count) in h.bounds.iter().zip(&h.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", number(*bound));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", number(h.sum_seconds));
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A sample value as the format writes floats (`Display` never uses exponents or `inf` here:
/// every value is a finite, non-negative total).
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "NaN".to_owned()
    }
}

/// A label value escaped as the format asks: backslash, double quote and line feed.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escaped as the format asks: backslash and line feed.
fn help_text(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(help_text("x\\y\nz"), "x\\\\y\\nz");
    }

    #[test]
    fn requests_are_counted_by_declared_route_only() {
        let metrics = Metrics::new(false);
        metrics.count_request(Some("/v1/k2/runs/{id}"), &Method::GET, 200);
        metrics.count_request(Some("/v1/k2/runs/{id}"), &Method::GET, 200);
        metrics.count_request(None, &Method::GET, 404);
        metrics.count_request(None, &Method::from_bytes(b"BREW").unwrap(), 404);
        let requests = metrics.requests.lock().unwrap();
        assert_eq!(requests[&("/v1/k2/runs/{id}".to_owned(), "GET", 200)], 2);
        assert_eq!(requests[&("other".to_owned(), "GET", 404)], 1);
        assert_eq!(requests[&("other".to_owned(), "other", 404)], 1);
        assert_eq!(requests.len(), 3);
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        let h = Histogram {
            bounds: &[0.5, 1.0],
            cumulative: vec![1, 3],
            count: 4,
            sum_seconds: 7.25,
        };
        let mut out = String::new();
        histogram(&mut out, "t", "Time.", &h);
        assert_eq!(
            out,
            "# HELP t Time.\n# TYPE t histogram\nt_bucket{le=\"0.5\"} 1\nt_bucket{le=\"1\"} 3\n\
             t_bucket{le=\"+Inf\"} 4\nt_sum 7.25\nt_count 4\n"
        );
    }
}
