//! The web UI's files, embedded in the binary (no CDN, no build step, works offline): `/` and
//! `/ui/{app.js,schedule.js,setup.js,ptz.js,style.css,schedule.css,setup.css,ptz.css}`. The page itself talks to the JSON API.

use axum::http::header;
use axum::response::IntoResponse;

pub async fn index() -> impl IntoResponse {
    page(
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    )
}

pub async fn app_js() -> impl IntoResponse {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    )
}

pub async fn schedule_js() -> impl IntoResponse {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/schedule.js"),
    )
}

pub async fn schedule_css() -> impl IntoResponse {
    page(
        "text/css; charset=utf-8",
        include_str!("../../ui/schedule.css"),
    )
}

pub async fn ptz_js() -> impl IntoResponse {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/ptz.js"),
    )
}

pub async fn ptz_css() -> impl IntoResponse {
    page("text/css; charset=utf-8", include_str!("../../ui/ptz.css"))
}

pub async fn style_css() -> impl IntoResponse {
    page(
        "text/css; charset=utf-8",
        include_str!("../../ui/style.css"),
    )
}

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// The camera set-up pages (`setup.js`, `setup.css`).
pub async fn setup_js() -> impl IntoResponse {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/setup.js"),
    )
}

pub async fn setup_css() -> impl IntoResponse {
    page(
        "text/css; charset=utf-8",
        include_str!("../../ui/setup.css"),
    )
}

pub async fn metrics_js() -> impl IntoResponse {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/metrics.js"),
    )
}

/// uPlot 1.6.31 (MIT, `ui/vendor/uPlot.LICENSE`), the metrics page's charts.
pub async fn uplot_js() -> impl IntoResponse {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/vendor/uPlot.iife.min.js"),
    )
}

pub async fn uplot_css() -> impl IntoResponse {
    page(
        "text/css; charset=utf-8",
        include_str!("../../ui/vendor/uPlot.min.css"),
    )
}
