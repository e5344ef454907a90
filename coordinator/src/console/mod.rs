//! The coordinator's read-only web console (`[server] console_listen`):
//! server-rendered HTML for two audiences.
//!
//! - Operators (`/`): the rounds with held-out accuracy and loss charts, ε
//!   spent against the budget, the nodes with when each was last heard from,
//!   its data set version and status, the stage in flight with a countdown to
//!   its deadline, and the failed rounds with their reasons. It updates live:
//!   `/events` (server-sent events) names the fragments to re-fetch
//!   (`/fragment/{name}`) as rounds complete.
//! - Auditors (`/audit`): the audit log as the server verifies it on each
//!   visit (size, root, last signed head), the erasure requests with their
//!   deadlines and state, each model's lineage drawn as a graph
//!   (`/audit/lineage/{version}`: rounds → nodes → data set versions), and
//!   the verified log for download (`/audit/export`, the JSON of
//!   `audit export --format json`).
//!
//! Auditors may also read the operator pages (nothing there is not in the
//! audit log); operators may not read the auditor pages.
//!
//! # Threat model
//!
//! The console changes nothing: every route is a `GET` that reads. What it
//! shows is what the audit log and the metrics show (node identities, data
//! set versions, accuracy, ε, erasure requests); never a model, a key, an
//! update or a data subject's pseudonym beyond what the log holds.
//!
//! - *Who can connect.* On a loopback address the console speaks plain HTTP
//!   and trusts the host: anyone who can open a socket on it (its users, or
//!   an SSH tunnel) reads the pages. A web page in the operator's browser
//!   that rebinds a name of its own to 127.0.0.1 (DNS rebinding) is refused:
//!   on loopback only requests for `localhost`, `127.0.0.1` or `[::1]` are
//!   answered. On any other address it refuses to start
//!   without TLS, and has it always: TLS 1.3 with the coordinator's server
//!   certificate, a client certificate of the federation's CA required in the
//!   handshake (the gRPC APIs' acceptor), then per page the certificate's
//!   role (`cohort://operator/…` or `cohort://auditor/…`) and the revocation
//!   list, as the gRPC APIs check them (`crate::service::access`). A browser
//!   without such a certificate does not get past the handshake; one with a
//!   node's certificate gets 403.
//! - *Hostile data.* Node ids come from certificates and data set names,
//!   failure reasons and erasure details from what nodes send: everything is
//!   escaped by the templates ([`pages`], [`charts`]). The pages carry no
//!   inline script or style, and the content security policy allows only the
//!   coordinator's own `/console.js` and `/console.css`, no other origin:
//!   an injection that slipped through could not run script. Nothing is
//!   fetched from elsewhere (no CDN).
//! - *Cost.* A page reads the store a few times (once more per registered
//!   node, for its data set version) and the audit page verifies the log; the
//!   stage fragment, re-fetched whenever a participant answers, reads only
//!   the live round. Unlike the gRPC APIs, the console has no per-identity
//!   request rate: a visitor with a certificate could load the server by
//!   refreshing. The connection limit of `server.max_connections` applies off
//!   loopback. An open `/events` stream outlives a revocation of its
//!   visitor's certificate (until the page reloads or the coordinator stops).
//! - Not covered: cross-site request forgery needs a state change (there is
//!   none); the loopback mode's trust in local users is the operator's choice.

pub mod charts;
pub mod live;
pub mod pages;
pub mod routes;
pub mod server;
pub mod snapshot;

use std::net::SocketAddr;
use std::sync::Arc;

use cohort_crypto::authz::RevocationList;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::federation::Federation;
use crate::rounds::live::LiveRound;
use server::{CertifiedListener, Gate, LoopbackListener, Visitor, browser_tls};

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The address could not be bound.
    #[error("console: cannot listen on {address}: {source}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Off loopback, and no TLS configuration to serve it with.
    #[error(
        "console: {0} is not a loopback address, and off loopback the console needs TLS with client certificates"
    )]
    NeedsTls(SocketAddr),
}

/// What the console's handlers read.
#[derive(Debug)]
pub struct Console {
    /// The federation's shared state.
    pub federation: Arc<Federation>,
    /// The round in flight.
    pub live: Arc<LiveRound>,
    /// Who may see what.
    pub gate: Gate,
}

/// How the console is secured off loopback: the coordinator's server TLS
/// configuration (client certificates of the federation's CA required) and
/// the federation's live revocation list.
#[derive(Debug, Clone)]
pub struct ConsoleTls {
    /// The gRPC API's server configuration, reused with HTTP/1.1.
    pub server: Arc<rustls::ServerConfig>,
    /// The revocation list the gRPC APIs consult.
    pub revocations: Arc<RevocationList>,
}

/// Binds `address` and serves the console until the federation shuts down:
/// plain HTTP on loopback; otherwise `tls` (refusing to start without it).
/// Returns the bound address and the server's task.
pub async fn serve(
    address: SocketAddr,
    federation: Arc<Federation>,
    live: Arc<LiveRound>,
    tls: Option<ConsoleTls>,
) -> Result<(SocketAddr, JoinHandle<()>), ConsoleError> {
    let failed = |source| ConsoleError::Listen { address, source };
    let tls = match tls {
        _ if address.ip().is_loopback() => None,
        Some(tls) => Some(tls),
        None => return Err(ConsoleError::NeedsTls(address)),
    };
    let listener = TcpListener::bind(address).await.map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    let mut shutdown = federation.shutdown_signal();
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let max_connections = federation.config.server.max_connections;
    let gate = match &tls {
        None => Gate::Loopback,
        Some(tls) => Gate::Certificates {
            revocations: tls.revocations.clone(),
        },
    };
    let console = Arc::new(Console {
        federation,
        live,
        gate,
    });
    let app = routes::router(console).into_make_service_with_connect_info::<Visitor>();
    let task = match tls {
        None => {
            tracing::info!(%local, "web console over plain HTTP (loopback)");
            let server = axum::serve(LoopbackListener(listener), app);
            tokio::spawn(async move { report(server.with_graceful_shutdown(stopped).await) })
        }
        Some(tls) => {
            let tls = browser_tls(&tls.server);
            let listener =
                CertifiedListener::new(listener, tls, max_connections).map_err(failed)?;
            tracing::info!(%local, "web console over TLS (operator or auditor certificates)");
            let server = axum::serve(listener, app);
            tokio::spawn(async move { report(server.with_graceful_shutdown(stopped).await) })
        }
    };
    Ok((local, task))
}

fn report(outcome: std::io::Result<()>) {
    if let Err(error) = outcome {
        tracing::error!(%error, "web console stopped");
    }
}
