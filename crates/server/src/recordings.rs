//! Recordings over HTTP: `GET /api/recordings` lists them, `GET /api/recordings/{stream}/{file}`
//! downloads one with `Range` support (so a `<video>` element can seek in it), and `DELETE`
//! (admin) removes one. The admin switch `POST /api/streams/{stream}/recording` starts or
//! stops recording a stream.

use directo_media::EngineHandle;
use serde::Deserialize;
use signaling_proto::{ErrorCode, RecordingEntry};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;
use warp::Filter;
use warp::reply::Reply;

use crate::auth::{Access, bearer};
use crate::body::limited_body;
use crate::error::{ApiError, parse_json};

fn check_file_name(file: &str) -> Result<(), ApiError> {
    let ok = !file.starts_with('.')
        && (file.ends_with(".webm") || file.ends_with(".mkv"))
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::BadRequest,
            "a recording is {stream}/{file}.webm or .mkv",
        ))
    }
}

async fn list(
    dir: PathBuf,
    access: Access,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    // Private streams' recordings are listed to admins only.
    let admin = access
        .authorize_admin(bearer(authorization.as_deref()))
        .is_ok();
    let infos = tokio::task::spawn_blocking(move || {
        if !dir.exists() {
            return Ok(Vec::new());
        }
        directo_recorder::list_recordings(&dir)
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let entries: Vec<RecordingEntry> = infos
        .into_iter()
        .filter(|info| admin || access.settings.get(&info.stream).public)
        .map(|info| {
            let file = info
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            RecordingEntry {
                id: format!("{}/{}", info.stream, file),
                start: info
                    .started_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                duration: info.duration.as_secs_f64(),
                size: info.size,
                codecs: info
                    .audio
                    .iter()
                    .chain(info.video.iter())
                    .map(|c| c.mime_type().to_owned())
                    .collect(),
                seekable: info.seekable,
                stream: info.stream,
            }
        })
        .collect();
    Ok(warp::reply::json(&entries).into_response())
}

async fn delete(
    dir: PathBuf,
    access: Access,
    stream: String,
    file: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    check_file_name(&file)?;
    let path = dir.join(&stream).join(&file);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(warp::http::StatusCode::NO_CONTENT.into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::new(
            ErrorCode::StreamNotFound,
            format!("no recording {stream}/{file}"),
        )),
        Err(e) => Err(ApiError::new(ErrorCode::Internal, e.to_string())),
    }
}

/// `POST /api/streams/{stream}/recording` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingSwitch {
    enabled: bool,
}

async fn switch(
    access: Access,
    engine: EngineHandle,
    stream: String,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    let request: RecordingSwitch = parse_json(&body?)?;
    let mut settings = access.settings.get(&stream);
    settings.record = Some(request.enabled);
    access
        .settings
        .set(&stream, settings)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("saving settings: {e}")))?;
    engine.apply_recording(&stream).await?;
    Ok(
        warp::reply::json(&serde_json::json!({ "stream": stream, "enabled": request.enabled }))
            .into_response(),
    )
}

/// The recordings routes, serving files from `dir`.
pub fn routes(
    dir: PathBuf,
    access: Access,
    engine: EngineHandle,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with_dir = {
        let dir = dir.clone();
        warp::any().map(move || dir.clone())
    };
    let with_access = {
        let access = access.clone();
        warp::any().map(move || access.clone())
    };
    let with_engine = warp::any().map(move || engine.clone());
    let list = warp::path!("api" / "recordings")
        .and(warp::get())
        .and(with_dir.clone())
        .and(with_access.clone())
        .and(warp::header::optional::<String>("authorization"))
        .then(|dir, access, auth| async move {
            list(dir, access, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    // Who may download: anyone for a public stream; a viewer token (header, or `?token=` for
    // a <video src>) for a private one. warp's file server answers Range requests and refuses
    // paths that leave `dir`.
    let refused = {
        let access = access.clone();
        warp::path("api")
            .and(warp::path("recordings"))
            .and(warp::get())
            .and(warp::path::peek())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::query::<std::collections::HashMap<String, String>>())
            .and_then(
                move |path: warp::path::Peek,
                      auth: Option<String>,
                      query: std::collections::HashMap<String, String>| {
                    let access = access.clone();
                    async move {
                        let stream = path.segments().next().unwrap_or_default().to_owned();
                        let credential = bearer(auth.as_deref())
                            .map(str::to_owned)
                            .or_else(|| query.get("token").cloned());
                        match access.authorize_view(&stream, credential.as_deref()) {
                            // Allowed: fall through to the file server.
                            Ok(_) => Err(warp::reject::not_found()),
                            Err(e) => Ok(e.into_response()),
                        }
                    }
                },
            )
    };
    let download = warp::path("api")
        .and(warp::path("recordings"))
        .and(warp::get())
        .and(warp::fs::dir(dir))
        .map(Reply::into_response);
    let download = refused.or(download).unify();
    let remove = warp::path!("api" / "recordings" / String / String)
        .and(warp::delete())
        .and(with_dir)
        .and(with_access.clone())
        .and(warp::header::optional::<String>("authorization"))
        .then(|stream, file, dir, access, auth| async move {
            delete(dir, access, stream, file, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let switch = warp::path!("api" / "streams" / String / "recording")
        .and(warp::post())
        .and(with_access)
        .and(with_engine)
        .and(warp::header::optional::<String>("authorization"))
        .and(limited_body(4096))
        .then(|stream, access, engine, auth, body| async move {
            switch(access, engine, stream, auth, body)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    list.or(download)
        .unify()
        .or(remove)
        .unify()
        .or(switch)
        .unify()
}
