//! The pages in `web/`, embedded in the binary so `directo` runs with nothing beside it.
//!
//! `/studio/{stream}`, `/watch/{stream}`, `/moderate/{stream}` and `/embed/{stream}` serve
//! the page of that name (it reads the stream from its own path); `/sdk/directo.js` is the
//! built browser SDK, committed as `web/sdk/directo.js` so no npm is needed to build.

use rust_embed::RustEmbed;
use warp::Filter;
use warp::http::{Response, StatusCode};
use warp::reply::Reply;

/// The `web/` directory (read from disk in debug builds, embedded in release builds).
#[derive(RustEmbed)]
#[folder = "../../web"]
#[exclude = "node_modules/*"]
#[exclude = "*.test.*"]
#[exclude = "src/*"]
#[exclude = "test/*"]
#[exclude = "dist/*"]
struct Assets;

/// The pages that take the stream name as the last path segment.
const STREAM_PAGES: [&str; 5] = ["studio", "watch", "moderate", "embed", "stats"];

/// The file that answers `path`: a stream page's HTML, a directory's index, or the file.
fn file_for(path: &str) -> String {
    if let Some((page, stream)) = path.split_once('/')
        && STREAM_PAGES.contains(&page)
        && !stream.is_empty()
        && !stream.contains('/')
    {
        return format!("{page}.html");
    }
    if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    }
}

/// The pages' Content-Security-Policy: scripts, styles and connections from this server only;
/// logos may come from elsewhere; only the embeddable player may be framed by other sites.
fn content_security_policy(path: &str) -> String {
    let frame_ancestors = if path == "embed.html" { "*" } else { "'self'" };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https: http:; \
         media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

fn serve(path: &str) -> warp::reply::Response {
    let path = file_for(path);
    match Assets::get(&path) {
        Some(file) => Response::builder()
            .header("Content-Type", file.metadata.mimetype())
            .header("Cache-Control", "no-cache")
            .header("X-Content-Type-Options", "nosniff")
            .header("Content-Security-Policy", content_security_policy(&path))
            .body(file.data.into_owned())
            .map(Reply::into_response)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /` and every file below it.
pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
{
    warp::get()
        .and(warp::path::tail())
        .map(|tail: warp::path::Tail| serve(tail.as_str()))
}

#[cfg(test)]
mod tests {
    use super::file_for;

    #[test]
    fn stream_pages_map_to_their_html() {
        assert_eq!(file_for("studio/launch"), "studio.html");
        assert_eq!(file_for("watch/launch"), "watch.html");
        assert_eq!(file_for("moderate/a-b_c"), "moderate.html");
        assert_eq!(file_for("embed/x"), "embed.html");
        assert_eq!(file_for("watch/"), "watch/index.html");
        assert_eq!(file_for("watch/a/b"), "watch/a/b");
        assert_eq!(file_for(""), "index.html");
        assert_eq!(file_for("sdk/directo.js"), "sdk/directo.js");
        assert_eq!(file_for("style.css"), "style.css");
    }
}
