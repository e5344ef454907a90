#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The coordinator's web console (`[server] console_listen`) over HTTP: on
//! loopback every page answers with what the store and the audit log hold;
//! off loopback only operator and auditor certificates get in, each to its
//! own pages, a revoked certificate is refused, and a browser without a
//! certificate does not get past TLS. `/events` tells an open page which
//! fragments a round changed, and ends when the coordinator stops.

use std::path::PathBuf;

use cohort_client::erasure::ErasureRequest;
use cohort_coordinator::Coordinator;
use cohort_coordinator::config::{AccountantKind, NoisePlacement, PrivacyConfig};
use cohort_coordinator::console::pages::FRAGMENTS;
use cohort_coordinator::console::{self, ConsoleError};
use cohort_e2e::console::{Page, browser_tls, get, get_for_host, get_tls};
use cohort_e2e::unlearning::report_erasure;
use cohort_e2e::{Testbed, plan, wait_finished, within};
use rustls::AlertDescription;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A federation of `rounds` rounds (at most 4: ε ≈ 11 of the budget's 30)
/// with 2 nodes under central DP.
pub fn console_testbed(rounds: u64) -> Testbed {
    let mut federation = plan(rounds, 2);
    federation.privacy = Some(PrivacyConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
        epsilon: 30.0,
        delta: 1e-5,
        accountant: AccountantKind::Rdp,
        placement: NoisePlacement::Central,
        adaptive_clipping: None,
    });
    federation.scaling = Some(cohort_e2e::public_scaling());
    Testbed::new(federation)
}

/// Runs `testbed`'s federation to its end with the console on `console`
/// (and `revocation_list`, if any).
pub async fn finished_federation(
    testbed: &Testbed,
    console: &str,
    revocation_list: Option<PathBuf>,
) -> Coordinator {
    let console = console.parse().unwrap();
    let mut coordinator = testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.console_listen = Some(console);
            config.server.revocation_list = revocation_list;
        })
        .await;
    let nodes = testbed.start_nodes(coordinator.local_addr(), 2);
    wait_finished(&mut coordinator, nodes).await;
    coordinator
}

fn assert_page(page: &Page, wanted: &[&str]) {
    assert_eq!(page.status, 200, "{}", page.body);
    for text in wanted {
        assert!(page.body.contains(text), "no {text:?} in {}", page.body);
    }
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-"), "{policy}");
}

#[tokio::test]
async fn on_loopback_every_page_shows_what_the_store_and_log_hold() {
    let testbed = console_testbed(3);
    let coordinator = finished_federation(&testbed, "127.0.0.1:0", None).await;
    let address = coordinator.console_addr().expect("console configured");
    let home = get(address, "/").await;
    assert_page(
        &home,
        &[
            "rounds-table",
            "accuracy-chart",
            "loss-chart",
            "epsilon-bar",
            "hospital-1",
        ],
    );
    assert_eq!(
        home.body.matches("<tr class=\"round\"").count(),
        3,
        "{}",
        home.body
    );
    for fragment in ["rounds", "privacy", "nodes", "stage", "failed"] {
        let page = get(address, &format!("/fragment/{fragment}")).await;
        assert_eq!(page.status, 200, "{fragment}: {}", page.body);
    }
    assert_eq!(get(address, "/fragment/audit").await.status, 404);
    // Adversary: a web page that rebinds its own name to 127.0.0.1 (DNS
    // rebinding) and reads the console as same-origin. Its requests name it.
    for path in ["/", "/audit/export"] {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let rebound = get_for_host(stream, "evil.example:9465", path)
            .await
            .unwrap();
        assert_eq!(rebound.status, 403, "{path}: {}", rebound.body);
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let local = get_for_host(stream, "127.0.0.1:9465", path).await.unwrap();
        assert_eq!(local.status, 200, "{path}: {}", local.body);
    }
    let script = get(address, "/console.js").await;
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.body.contains("EventSource(\"/events\")"));

    // An erasure request: hospital-1 leaves.
    let grpc = coordinator.local_addr();
    report_erasure(&testbed, grpc, "hospital-1", &ErasureRequest::Leave, None).await;
    assert_auditor_pages(address, &coordinator).await;
    coordinator.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the console stops with the coordinator"
    );
}

/// The audit page shows the verified log and hospital-1's open request; the
/// final model's lineage names both nodes; the export is the whole log.
async fn assert_auditor_pages(address: std::net::SocketAddr, coordinator: &Coordinator) {
    let audit = get(address, "/audit").await;
    assert_page(
        &audit,
        &[
            "Verified by the server",
            "erasures-table",
            "hospital-1",
            "open",
        ],
    );
    let store = &coordinator.federation().store;
    let head = store.head().await.unwrap().unwrap();
    let lineage = get(address, &format!("/audit/lineage/{}", head.model_version)).await;
    assert_page(
        &lineage,
        &["lineage-graph", "hospital-0", "hospital-1", "round 3"],
    );
    assert_eq!(
        get(address, "/audit/lineage/no-such-model").await.status,
        404
    );
    let export = get(address, "/audit/export").await;
    assert_eq!(export.status, 200);
    let json: serde_json::Value = serde_json::from_str(&export.body).unwrap();
    let entries = json["entries"].as_array().unwrap().len() as u64;
    assert_eq!(Some(entries), json["head"]["tree_size"].as_u64());
    assert_eq!(entries, store.audit_len().await.unwrap());
}

#[tokio::test]
async fn off_loopback_only_operator_and_auditor_certificates_get_in() {
    let testbed = console_testbed(1);
    let pki = &testbed.provisioned;
    let former = pki.auditor("former-regulator").unwrap();
    pki.pki.revoke(&former.certificate).unwrap();
    let revocations = Some(pki.pki.signed_revocation_list());
    let coordinator = finished_federation(&testbed, "0.0.0.0:0", revocations).await;
    let address = ("127.0.0.1:".to_owned()
        + &coordinator.console_addr().unwrap().port().to_string())
        .parse()
        .unwrap();
    let ca = pki.pki.ca_certificate();

    // No certificate: the handshake ends with the server's alert.
    let refused = get_tls(address, browser_tls(&ca, None), "/")
        .await
        .unwrap_err();
    let alert = refused
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    assert_eq!(
        alert,
        Some(&rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        )),
        "{refused:?}"
    );

    let node = browser_tls(&ca, Some(&pki.node("hospital-0").unwrap()));
    assert_eq!(get_tls(address, node, "/").await.unwrap().status, 403);
    let operator = browser_tls(&ca, Some(&pki.operator("ops").unwrap()));
    let home = get_tls(address, operator.clone(), "/").await.unwrap();
    assert_page(&home, &["rounds-table"]);
    assert_eq!(
        get_tls(address, operator, "/audit").await.unwrap().status,
        403
    );
    let auditor = browser_tls(&ca, Some(&pki.auditor("regulator").unwrap()));
    assert_page(
        &get_tls(address, auditor.clone(), "/audit").await.unwrap(),
        &["Verified by the server"],
    );
    assert_eq!(get_tls(address, auditor, "/").await.unwrap().status, 200);
    // A revoked auditor's certificate still chains to the CA: refused per page.
    let revoked = get_tls(address, browser_tls(&ca, Some(&former)), "/audit").await;
    let revoked = revoked.unwrap();
    assert_eq!(revoked.status, 403);
    assert!(revoked.body.contains("revoked"), "{}", revoked.body);

    // Without TLS the console does not start off loopback.
    let (federation, live) = (
        coordinator.federation().clone(),
        coordinator.live_round().clone(),
    );
    let unsecured = console::serve("0.0.0.0:0".parse().unwrap(), federation, live, None).await;
    assert!(
        matches!(unsecured, Err(ConsoleError::NeedsTls(_))),
        "{unsecured:?}"
    );
    coordinator.shutdown().await;
}

#[tokio::test]
async fn events_name_the_fragments_a_round_changes_and_end_at_shutdown() {
    let testbed = console_testbed(2);
    let mut coordinator = testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.console_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .await;
    let address = coordinator.console_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut next_line = async || lines.next_line().await.unwrap();
    assert!(next_line().await.unwrap().starts_with("HTTP/1.1 200"));

    let nodes = testbed.start_nodes(coordinator.local_addr(), 2);
    let refresh = within("a round's refresh event", async {
        while let Some(line) = next_line().await {
            if let Some(names) = line.strip_prefix("data: ")
                && names.contains("rounds")
            {
                return names.to_owned();
            }
        }
        panic!("the event stream ended before a round completed");
    })
    .await;
    assert!(
        refresh.split(' ').all(|name| FRAGMENTS.contains(&name)),
        "{refresh}"
    );
    wait_finished(&mut coordinator, nodes).await;
    within(
        "the coordinator to stop with an open event stream",
        coordinator.shutdown(),
    )
    .await;
    within("the event stream to end", async {
        while next_line().await.is_some() {}
    })
    .await;
}
