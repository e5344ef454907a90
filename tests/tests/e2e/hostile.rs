#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Hostile input: garbage on the TLS port, a message over the size limit, a
//! node flooding requests, more connections than the coordinator takes. Each is
//! refused and reported, and the federation goes on to complete its round.

use cohort_coordinator::Coordinator;
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_e2e::{Testbed, header, next_event, plan, raw_client, within};
use cohort_proto::{MAX_MESSAGE_BYTES, v1};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::Code;

async fn start(
    testbed: &Testbed,
    tune: impl FnOnce(&mut cohort_coordinator::config::ServerConfig),
) -> Coordinator {
    testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            tune(&mut config.server)
        })
        .await
}

/// Waits for the round to complete with `nodes` contributions.
async fn round_completes(
    events: &mut tokio::sync::broadcast::Receiver<FederationEvent>,
    nodes: usize,
) {
    let contributors = next_event(events, |event| match event {
        FederationEvent::RoundCompleted(record) => match &record.outcome {
            RoundOutcome::Completed { contributions, .. } => Some(contributions.len()),
            RoundOutcome::Failed { .. } => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(contributors, nodes, "the honest nodes' round completes");
}

#[tokio::test]
async fn garbage_oversized_messages_and_floods_are_refused_and_the_round_completes() {
    let testbed = Testbed::new(plan(1, 2));
    let coordinator = start(&testbed, |server| {
        server.requests_per_second = 5;
        server.request_burst = 20;
    })
    .await;
    let mut events = coordinator.events();
    let address = coordinator.local_addr();

    // Garbage on the TLS port: not a ClientHello.
    let mut tcp = TcpStream::connect(address).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: cohort\r\n\r\n\x00\xff\x13garbage")
        .await
        .unwrap();
    let reason = next_event(&mut events, |event| match event {
        FederationEvent::ConnectionRefused { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("TLS handshake failed"), "{reason}");

    // A message over the limit is refused before it is decoded.
    let mut rogue = raw_client(&testbed.node_tls("rogue"), address)
        .await
        .unwrap();
    rogue = rogue.max_encoding_message_size(4 * MAX_MESSAGE_BYTES);
    let width = MAX_MESSAGE_BYTES / 8 + 1;
    let oversized = rogue
        .submit_feature_stats(v1::FeatureStatsSubmission {
            header: header("rogue"),
            count: 1,
            sum: vec![0.0; width],
            sum_of_squares: vec![0.0; width],
        })
        .await
        .expect_err("an oversized message is refused");
    assert!(
        matches!(oversized.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{oversized:?}"
    );

    // A flood of polls (it never registers, so it is never sampled): refused
    // as unregistered up to the burst, then RESOURCE_EXHAUSTED naming the node.
    let mut codes = Vec::new();
    for _ in 0..100 {
        let polled = rogue
            .poll_task(v1::PollTaskRequest {
                header: header("rogue"),
                withdrawn_models: Vec::new(),
            })
            .await;
        let status = polled.expect_err("an unregistered node gets no task");
        let code = status.code();
        codes.push(code);
        if code == Code::ResourceExhausted {
            assert!(status.message().contains("rogue"), "{}", status.message());
            break;
        }
    }
    assert_eq!(codes.last(), Some(&Code::ResourceExhausted), "{codes:?}");
    assert!(codes.len() > 10, "the burst passes first: {codes:?}");

    // The honest nodes go on and complete the round.
    let nodes = testbed.start_nodes(address, 2);
    round_completes(&mut events, 2).await;
    for node in nodes {
        within("a node", node).await.unwrap().unwrap();
    }
    coordinator.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_and_reported() {
    let testbed = Testbed::new(plan(1, 2));
    let coordinator = start(&testbed, |server| server.max_connections = 2).await;
    let mut events = coordinator.events();
    let address = coordinator.local_addr();
    // Two idle TCP connections hold both slots (their handshakes wait).
    let first = TcpStream::connect(address).await.unwrap();
    let second = TcpStream::connect(address).await.unwrap();
    let _third = TcpStream::connect(address).await.unwrap();
    let reason = next_event(&mut events, |event| match event {
        FederationEvent::ConnectionRefused { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        reason.contains("connection limit reached (2 open)"),
        "{reason}"
    );
    // Once they go, the slots are free again and nodes get through.
    drop((first, second));
    let nodes = testbed.start_nodes(address, 2);
    round_completes(&mut events, 2).await;
    for node in nodes {
        within("a node", node).await.unwrap().unwrap();
    }
    coordinator.shutdown().await;
}
