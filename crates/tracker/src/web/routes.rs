//! What the web server answers: the page, `/api/status`, `/api/events`.
//!
//! | path | answer |
//! |---|---|
//! | `GET /` | the page (one HTML file with its script and style, compiled in) |
//! | `GET /api/status` | the status listing as JSON, the same as `tracker status --json` |
//! | `GET /api/events` | server-sent events: `join`, `seed`, `leave`, `expire` as they happen, `stats` once a second; 503 at the subscriber cap |
//!
//! Everything is read-only: any other method gets 405 (with `Allow`), any
//! other path 404.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::feed::{Feed, Subscription};
use crate::handler::Tracker;

/// The page: markup, style and script in one file.
pub const PAGE: &str = include_str!("page.html");

/// Comment lines sent on an idle event stream, so that dead clients are found.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub tracker: Arc<Tracker>,
    pub feed: Feed,
    /// Cancelled when the tracker shuts down: event streams end.
    pub stop: CancellationToken,
}

/// The routes over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/events", get(events))
        .fallback(not_found)
        .layer(axum::middleware::map_response(nosniff))
        .with_state(app)
}

/// Every answer is exactly the type it says.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Its own script and style, and requests to this server only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn status(State(app): State<App>) -> Response {
    // Off the async workers: a listing of many peers takes a while to render,
    // and announces must not wait behind it.
    let tracker = app.tracker.clone();
    let rendered =
        tokio::task::spawn_blocking(move || serde_json::to_vec(&tracker.status(Instant::now())))
            .await;
    match rendered {
        Ok(Ok(json)) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            json,
        )
            .into_response(),
        Ok(Err(e)) => {
            warn!("cannot encode the status listing: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(e) => {
            warn!("status listing task failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn events(State(app): State<App>) -> Response {
    match app.feed.subscribe() {
        Ok(subscription) => Sse::new(stream(subscription, app.stop))
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response(),
        Err(full) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("{full}\n"),
        )
            .into_response(),
    }
}

/// The subscriber's messages as SSE events (unnamed: the page's `onmessage`
/// reads the `event` field), until it falls behind or the tracker stops.
fn stream(
    subscription: Subscription,
    stop: CancellationToken,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold((subscription, stop), |(mut sub, stop)| async move {
        let message = tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            message = sub.next() => message,
        }?;
        Some((Ok(SseEvent::default().data(&*message)), (sub, stop)))
    })
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
