//! HTTPS built in (rustls), because browsers only give pages on HTTPS their camera.
//!
//! warp 0.4 has no TLS of its own, so this module accepts TCP connections, completes the TLS
//! handshake with `tokio-rustls` and hands each connection to hyper with the warp routes as
//! the service (HTTP/1.1 and HTTP/2, WebSocket upgrades included). The client's address is
//! passed to the routes in the `x-directo-client-ip` header, which is removed first from
//! whatever the client sent, so rate limits and bans keep working behind TLS.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// The header the TLS front end stores the client's IP in.
pub const CLIENT_IP_HEADER: &str = "x-directo-client-ip";

/// Load a PEM certificate chain and private key into a rustls server configuration.
pub fn load_config(cert: &Path, key: &Path) -> std::io::Result<Arc<ServerConfig>> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("cannot read the certificate", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("cannot parse the certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(bad("no certificate in", cert, &"empty file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("cannot read the key", key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS setup failed for", cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("the key does not fit the certificate", cert, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `filter` over TLS on `listener` until `shutdown` completes.
pub async fn serve<F>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    filter: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: warp::Filter<Error = Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let acceptor = TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let acceptor = acceptor.clone();
        let filter = filter.clone();
        tokio::spawn(async move {
            // A client that never finishes the handshake must not hold a task forever.
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let routes = warp::service(filter);
            let ip = remote.ip().to_string();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    let mut routes = routes.clone();
                    req.headers_mut().remove(CLIENT_IP_HEADER);
                    if let Ok(value) = ip.parse() {
                        req.headers_mut().insert(CLIENT_IP_HEADER, value);
                    }
                    async move {
                        use tower_service::Service;
                        routes.call(req).await
                    }
                },
            );
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%remote, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
}
