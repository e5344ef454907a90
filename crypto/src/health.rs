//! The standard gRPC health service (`grpc.health.v1.Health`, served by
//! `tonic-health`) as every Cohort gRPC server reports through it: the
//! coordinator and a node's encrypted-inference server.
//!
//! A server comes up NOT_SERVING — for the whole server (`""`) and for each of
//! its services — turns SERVING when its owner says it is ready
//! ([`ServerHealth::serving`]: the coordinator once its round engine runs, a
//! node once its models are loaded), and turns NOT_SERVING again when it
//! begins a graceful stop ([`ServerHealth::stopping`]). A `Watch` call hears
//! every change, and its stream ends once the server stops, so that a
//! watcher does not hold up the server's graceful shutdown.
//!
//! Who may ask: the health service sits behind the same authorization layer
//! as the server's other services ([`crate::authz`]). Give it to the policy
//! with [`crate::authz::AccessPolicy::admit_any_member`]: a certificate of any
//! role of the federation's CA may ask (mutual TLS, the revocation list and
//! the request rate still apply); it opens no other service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

/// The full gRPC name of the health service (`grpc.health.v1.Health`), for
/// the server's access policy.
pub const HEALTH_SERVICE: &str = <HealthServer<StoppableHealth> as NamedService>::NAME;

/// The health service to add to a server (`Server::builder().add_service`).
pub type HealthGrpcService = HealthServer<StoppableHealth>;

/// What a server's owner reports its health through (see the module docs).
#[derive(Debug)]
pub struct ServerHealth {
    reporter: HealthReporter,
    /// `""` (the whole server) and the names of its services.
    services: Vec<String>,
    stopped: watch::Sender<bool>,
}

impl ServerHealth {
    /// The health of a server offering `services` (their full gRPC names):
    /// NOT_SERVING for each and for the whole server; and the health service
    /// to add to the server.
    pub async fn new(services: &[&str]) -> (Self, HealthGrpcService) {
        let reporter = HealthReporter::new();
        let mut names = vec![String::new()];
        names.extend(services.iter().map(|name| (*name).to_owned()));
        let (stopped, watched) = watch::channel(false);
        let health = Self {
            reporter: reporter.clone(),
            services: names,
            stopped,
        };
        health.set(ServingStatus::NotServing).await;
        let service = StoppableHealth {
            inner: HealthService::from_health_reporter(reporter),
            stopped: watched,
        };
        (health, HealthServer::new(service))
    }

    /// The server is ready: SERVING.
    pub async fn serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    /// The server cannot do its work (say its engine failed) but still
    /// answers: NOT_SERVING; `Watch` streams go on.
    pub async fn not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// The server begins a graceful stop: NOT_SERVING, after which every
    /// `Watch` stream ends (once it has delivered the change).
    pub async fn stopping(&self) {
        self.set(ServingStatus::NotServing).await;
        self.stopped.send_replace(true);
    }

    async fn set(&self, status: ServingStatus) {
        for name in &self.services {
            self.reporter.set_service_status(name, status).await;
        }
    }
}

/// `tonic-health`'s service, whose `Watch` streams end when the server stops.
#[derive(Debug)]
pub struct StoppableHealth {
    inner: HealthService,
    stopped: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Health for StoppableHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = UntilStopped;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let statuses = self.inner.watch(request).await?.into_inner();
        let mut stopped = self.stopped.clone();
        let stopped = Box::pin(async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        });
        Ok(Response::new(UntilStopped { statuses, stopped }))
    }
}

/// A `Watch` stream: every status change, until the server stops.
pub struct UntilStopped {
    statuses: tonic_health::server::WatchStream,
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl fmt::Debug for UntilStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntilStopped").finish_non_exhaustive()
    }
}

impl Stream for UntilStopped {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // A change first: the NOT_SERVING of a stop is delivered before the end.
        if let Poll::Ready(item) = Pin::new(&mut self.statuses).poll_next(cx) {
            return Poll::Ready(item);
        }
        self.stopped.as_mut().poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

    use tokio_stream::StreamExt;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;

    use super::*;

    fn request(service: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: service.to_owned(),
        })
    }

    async fn next(stream: &mut UntilStopped) -> Option<Wire> {
        let response = stream.next().await?.unwrap();
        Some(Wire::try_from(response.status).unwrap())
    }

    #[tokio::test]
    async fn not_serving_then_serving_then_not_serving_and_the_watch_ends() {
        const SERVICE: &str = "cohort.test.v1.Test";
        let (health, server) = ServerHealth::new(&[SERVICE]).await;
        let service = StoppableHealth {
            inner: HealthService::from_health_reporter(health.reporter.clone()),
            stopped: health.stopped.subscribe(),
        };
        drop(server);
        let mut whole = service.watch(request("")).await.unwrap().into_inner();
        let mut named = service.watch(request(SERVICE)).await.unwrap().into_inner();
        for stream in [&mut whole, &mut named] {
            assert_eq!(next(stream).await, Some(Wire::NotServing));
        }
        health.serving().await;
        for stream in [&mut whole, &mut named] {
            assert_eq!(next(stream).await, Some(Wire::Serving));
        }
        let checked = service.check(request(SERVICE)).await.unwrap();
        assert_eq!(checked.into_inner().status, Wire::Serving as i32);
        health.stopping().await;
        for stream in [&mut whole, &mut named] {
            assert_eq!(next(stream).await, Some(Wire::NotServing));
            assert_eq!(next(stream).await, None, "the watch ends with the stop");
        }
        let unknown = service.check(request("cohort.other.v1.Other")).await;
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    }
}
