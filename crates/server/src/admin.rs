//! The admin API (admin token): mint tokens, set a stream's viewing policy and branding.

use directo_media::EngineHandle;
use serde::Deserialize;
use signaling_proto::ErrorCode;
use warp::Filter;
use warp::reply::Reply;

use crate::auth::{Access, bearer};
use crate::error::ApiError;
use crate::settings::StreamSettings;
use crate::token::{TokenRole, parse_ttl};
use crate::whip::{check_stream_name, limited_body};

/// The largest admin request body.
const MAX_ADMIN_BODY: u64 = 16 * 1024;

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    stream: String,
    role: TokenRole,
    #[serde(default)]
    name: Option<String>,
    /// Lifetime such as `2h` (default `1h`).
    #[serde(default)]
    ttl: Option<String>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("bad JSON body: {e}")))
}

async fn mint(
    access: Access,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    access.authorize_admin(bearer(authorization.as_deref()))?;
    let request: TokenRequest = parse_json(&body?)?;
    if request.stream != "*" {
        check_stream_name(&request.stream)?;
    }
    let ttl = match request.ttl.as_deref() {
        None => std::time::Duration::from_secs(3600),
        Some(text) => parse_ttl(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                "ttl is a number with s, m, h or d, e.g. 2h",
            )
        })?,
    };
    let name = request
        .name
        .as_deref()
        .map(crate::auth::check_name)
        .transpose()?;
    let (token, exp) = access
        .tokens
        .mint(&request.stream, request.role, name, ttl)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "token": token, "expires_at": exp })),
        warp::http::StatusCode::CREATED,
    )
    .into_response())
}

async fn get_settings(access: Access, stream: String) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    Ok(warp::reply::json(&access.settings.get(&stream)).into_response())
}

async fn put_settings(
    access: Access,
    stream: String,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    access.authorize_admin(bearer(authorization.as_deref()))?;
    check_stream_name(&stream)?;
    let settings: StreamSettings = parse_json(&body?)?;
    if let Some(color) = &settings.accent_color {
        let ok = color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "accent_color is #rrggbb",
            ));
        }
    }
    if let Some(url) = &settings.logo_url
        && !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/'))
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "logo_url is an http(s) URL or a path on this server",
        ));
    }
    access
        .settings
        .set(&stream, settings.clone())
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("saving settings: {e}")))?;
    Ok(warp::reply::json(&settings).into_response())
}

/// `POST /api/tokens`, `GET|PUT /api/streams/{stream}/settings`.
pub fn routes(
    access: Access,
    _engine: EngineHandle,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with_access = warp::any().map(move || access.clone());
    let mint = warp::path!("api" / "tokens")
        .and(warp::post())
        .and(with_access.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(limited_body(MAX_ADMIN_BODY))
        .then(|access, auth, body| async move {
            mint(access, auth, body)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let get = warp::path!("api" / "streams" / String / "settings")
        .and(warp::get())
        .and(with_access.clone())
        .then(|stream, access| async move {
            get_settings(access, stream)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let put = warp::path!("api" / "streams" / String / "settings")
        .and(warp::put())
        .and(with_access)
        .and(warp::header::optional::<String>("authorization"))
        .and(limited_body(MAX_ADMIN_BODY))
        .then(|stream, access, auth, body| async move {
            put_settings(access, stream, auth, body)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    mint.or(get).unify().or(put).unify()
}
