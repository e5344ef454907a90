//! Serving [`InferenceService`] over mutual TLS: the same acceptor as the
//! coordinator's ([`cohort_crypto::tls::acceptor`]), behind the same
//! authorization layer ([`cohort_crypto::authz`]: requester certificates only,
//! none revoked — the federation's revocation list, re-read when it changes —
//! each within its request rate), with the same 4 MiB message limit as the
//! federation protocol (keys arrive in chunks, see the schema).
//!
//! It serves the standard gRPC health service too
//! ([`cohort_crypto::health`]), open to a certificate of any role of the
//! federation's CA: NOT_SERVING from start until its owner calls
//! [`InferenceServer::serving`], SERVING then, NOT_SERVING again from the
//! start of [`InferenceServer::shutdown`].

use cohort_crypto::tls::acceptor::DEFAULT_MAX_CONNECTIONS;
use std::net::SocketAddr;
use std::sync::Arc;

use cohort_crypto::Role;
use cohort_crypto::authz::{AccessPolicy, AuthorizationLayer, Authorizer, RevocationList};
use cohort_crypto::health::{HEALTH_SERVICE, ServerHealth};
use cohort_proto::MAX_MESSAGE_BYTES;
use cohort_proto::inference::encrypted_inference_server::EncryptedInferenceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::server::NamedService;

use super::service::InferenceService;

/// A running inference server.
#[derive(Debug)]
pub struct InferenceServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    health: ServerHealth,
}

impl InferenceServer {
    /// Serves `service` on `listener` with the rustls server configuration `tls`
    /// (which must require client certificates: [`cohort_crypto::tls::server_config`]),
    /// refusing the certificates `revocations` lists at each call. Its health
    /// service says NOT_SERVING until [`InferenceServer::serving`].
    pub async fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        service: InferenceService,
        revocations: Arc<RevocationList>,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let incoming = cohort_crypto::tls::acceptor::mutual_tls_incoming(
            listener,
            tls,
            DEFAULT_MAX_CONNECTIONS,
            |_remote, _reason| {
                // The acceptor already logs every refused connection.
            },
        );
        let authorization = authorization(&service, revocations);
        let grpc = EncryptedInferenceServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (health, health_service) = ServerHealth::new(&[INFERENCE_SERVICE]).await;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
                .layer(authorization)
                .add_service(grpc)
                .add_service(health_service)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "inference server stopped");
            }
        });
        tracing::info!(%local_addr, "encrypted-inference service listening (mutual TLS 1.3)");
        Ok(Self {
            local_addr,
            stop,
            task,
            health,
        })
    }

    /// The server is ready (its models loaded): its health service says
    /// SERVING.
    pub async fn serving(&self) {
        self.health.serving().await;
    }

    /// The address the service is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Says NOT_SERVING (ending health `Watch` streams), stops accepting,
    /// lets calls in flight finish, and waits for the server.
    pub async fn shutdown(self) {
        self.health.stopping().await;
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (an error).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// The inference service's full gRPC name.
const INFERENCE_SERVICE: &str = <EncryptedInferenceServer<InferenceService> as NamedService>::NAME;

/// The layer every call to the inference server passes: requesters only
/// (the health service: any member), `revocations` consulted, the service's
/// request rate, refusals into its request log.
fn authorization(
    service: &InferenceService,
    revocations: Arc<RevocationList>,
) -> AuthorizationLayer {
    let policy = AccessPolicy::new()
        .admit(INFERENCE_SERVICE, Role::Requester)
        .admit_any_member(HEALTH_SERVICE);
    let authorizer = Authorizer::new(policy, revocations, service.config().request_rate);
    AuthorizationLayer::new(Arc::new(authorizer), service.refusal_observer())
}
