//! The console's routes: each handler admits its audience
//! ([`super::server::OperatorPass`], [`super::server::AuditorPass`]),
//! gathers its data ([`super::snapshot`]) and renders it
//! ([`super::pages`]). Every response forbids caching, framing and
//! content sniffing, and its content security policy allows only the
//! coordinator's own script and stylesheet.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::Markup;

use super::Console;
use super::live::{SCRIPT, events};
use super::pages::{
    FRAGMENTS, STYLESHEET, audit_page, error_page, fragment, lineage_page, operator_page,
};
use super::server::{AuditorPass, OperatorPass};
use super::snapshot::{self, SnapshotError};

/// What every response carries.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The console's router over `console`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(operator))
        .route("/fragment/{name}", get(operator_fragment))
        .route("/events", get(live_events))
        .route("/console.js", get(script))
        .route("/console.css", get(stylesheet))
        .route("/audit", get(audit))
        .route("/audit/lineage/{version}", get(lineage))
        .route("/audit/export", get(export))
        .fallback(not_found)
        .layer(axum::middleware::map_response(secure))
        .with_state(console)
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A page, or the error that kept it from being gathered (500).
fn rendered(page: Result<Markup, SnapshotError>) -> Response {
    match page {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(error) => {
            tracing::error!(%error, "console page failed");
            let status = match error {
                SnapshotError::Lineage(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let page = error_page("Cannot show this page", &error.to_string());
            (status, Html(page.into_string())).into_response()
        }
    }
}

async fn operator(_: OperatorPass, State(console): State<Arc<Console>>) -> Response {
    let snapshot = snapshot::operator(&console.federation, &console.live).await;
    rendered(snapshot.map(|s| operator_page(&s)))
}

async fn operator_fragment(
    _: OperatorPass,
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
) -> Response {
    if !FRAGMENTS.contains(&name.as_str()) {
        return not_found().await;
    }
    let snapshot = if name == "stage" {
        Ok(snapshot::stage_only(&console.live))
    } else {
        snapshot::operator(&console.federation, &console.live).await
    };
    match snapshot.map(|s| fragment(&name, &s)) {
        Ok(Some(markup)) => Html(markup.into_string()).into_response(),
        Ok(None) => not_found().await,
        Err(error) => rendered(Err(error)),
    }
}

async fn live_events(_: OperatorPass, State(console): State<Arc<Console>>) -> Response {
    events(&console.federation, &console.live).into_response()
}

/// A file the pages load from the coordinator.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn audit(_: AuditorPass, State(console): State<Arc<Console>>) -> Response {
    let snapshot = snapshot::audit(&console.federation).await;
    rendered(snapshot.map(|s| audit_page(&s)))
}

async fn lineage(
    _: AuditorPass,
    State(console): State<Arc<Console>>,
    Path(version): Path<String>,
) -> Response {
    let lineage = snapshot::lineage(&console.federation, &version).await;
    rendered(lineage.map(|l| lineage_page(&l)))
}

async fn export(_: AuditorPass, State(console): State<Arc<Console>>) -> Response {
    match snapshot::export(&console.federation).await {
        Ok(json) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit-log.json\"",
                ),
            ],
            json.to_string(),
        )
            .into_response(),
        Err(error) => rendered(Err(error)),
    }
}

async fn not_found() -> Response {
    let page = error_page("Not found", "No such page.");
    (StatusCode::NOT_FOUND, Html(page.into_string())).into_response()
}
