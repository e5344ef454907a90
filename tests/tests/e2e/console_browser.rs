#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The web console in a real headless Chromium, driven over WebDriver
//! (chromedriver, started here on loopback and stopped after): the operator
//! page loads without a script error or a content-security-policy
//! violation, shows the rounds table and the charts, and fills the table in
//! place as rounds complete (through `/events`, the page never reloaded); the
//! auditor pages show an erasure request and a model's lineage graph.
//!
//! Chromium and chromedriver are the distribution's (`apt-get install
//! chromium chromium-driver`, which `.ci/run` does): without them the test
//! fails, saying so. With `COHORT_CONSOLE_SCREENSHOTS=DIR` it saves the
//! pages' screenshots there (those in `docs/console/` were made so).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cohort_client::erasure::ErasureRequest;
use cohort_coordinator::Coordinator;
use cohort_e2e::unlearning::report_erasure;
use cohort_e2e::{Testbed, wait_finished, within};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::console::console_testbed;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "install them with `apt-get install -y chromium chromium-driver` \
                       (as .ci/run does)";

/// A headless Chromium session and the chromedriver serving it.
struct Browser {
    driver: Child,
    session: Session,
}

/// What the test does in the browser (a handle on the session, `Clone`, so
/// the test body can run as its own task while [`Browser`] stays to stop it).
#[derive(Clone)]
struct Session {
    client: Client,
}

/// A free port on loopback, from the kernel (chromedriver takes a number).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver on loopback, waits for its "started" line, and
    /// opens a headless Chromium session.
    async fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: {INSTALL}"
            );
        }
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver does not start ({e}): {INSTALL}"));
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        within("chromedriver to start", async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it started");
        })
        .await;
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1600"],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("no Chromium session ({e}): {INSTALL}"));
        let patience = Some(cohort_e2e::PATIENCE);
        let timeouts = TimeoutConfiguration::new(patience, patience, Some(Duration::ZERO));
        client.update_timeouts(timeouts).await.unwrap();
        let session = Session { client };
        Self { driver, session }
    }

    /// Runs `test` in the browser as its own task; then, whether it passed or
    /// panicked, ends the session (Chromium exits) and chromedriver, and
    /// passes the panic on.
    async fn run<F: Future<Output = ()> + Send + 'static>(
        mut self,
        test: impl FnOnce(Session) -> F,
    ) {
        let outcome = tokio::spawn(test(self.session.clone())).await;
        let closed = self.session.client.close().await;
        self.driver.kill().await.unwrap();
        if let Err(failed) = outcome {
            std::panic::resume_unwind(failed.into_panic());
        }
        closed.unwrap();
    }
}

impl Session {
    /// The script errors and policy violations the page recorded.
    async fn errors(&self) -> Vec<String> {
        let errors = self.client.execute("return window.consoleErrors;", vec![]);
        serde_json::from_value(errors.await.unwrap()).unwrap()
    }

    /// Waits until `selector` matches at least `count` elements: resolved by
    /// a mutation observer in the page, as soon as the DOM holds them.
    async fn wait_for_count(&self, selector: &str, count: u64) {
        const SCRIPT: &str = "const [selector, count, done] = arguments;
            const enough = () => document.querySelectorAll(selector).length >= count;
            if (enough()) { done(true); return; }
            new MutationObserver((_, observer) => {
                if (enough()) { observer.disconnect(); done(true); }
            }).observe(document.body, { childList: true, subtree: true });";
        let what = format!("{count} × {selector}");
        let waited = self
            .client
            .execute_async(SCRIPT, vec![json!(selector), json!(count)]);
        within(&what, waited).await.unwrap();
    }

    async fn count(&self, selector: &str) -> u64 {
        let script = "return document.querySelectorAll(arguments[0]).length;";
        let counted = self.client.execute(script, vec![json!(selector)]);
        counted.await.unwrap().as_u64().unwrap()
    }

    /// Saves a screenshot as `name`.png in `COHORT_CONSOLE_SCREENSHOTS`, if set.
    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("COHORT_CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.unwrap();
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

const ROUNDS: u64 = 4;

#[tokio::test]
async fn in_chromium_the_console_updates_live_and_shows_lineage_and_erasures() {
    let testbed = console_testbed(ROUNDS);
    let coordinator = testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.console_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .await;
    Browser::start()
        .await
        .run(|browser| watch_the_federation(browser, testbed, coordinator))
        .await;
}

/// Opens the operator page before any round, runs the federation, and
/// checks the page and then the auditor pages.
async fn watch_the_federation(browser: Session, testbed: Testbed, mut coordinator: Coordinator) {
    let console = format!("http://{}", coordinator.console_addr().unwrap());
    let page = &browser.client;
    page.goto(&format!("{console}/")).await.unwrap();
    page.find(Locator::Id("rounds-table")).await.unwrap();
    assert_eq!(browser.count("#rounds-table tr.round").await, 0);
    // Marks this load of the page: a reload would drop it.
    page.execute("window.loadedOnce = true;", vec![])
        .await
        .unwrap();

    let nodes = testbed.start_nodes(coordinator.local_addr(), 2);
    browser.wait_for_count("#rounds-table tr.round", 1).await;
    browser
        .wait_for_count("#rounds-table tr.round", ROUNDS)
        .await;
    wait_finished(&mut coordinator, nodes).await;
    assert_operator_page_complete(&browser).await;

    let grpc = coordinator.local_addr();
    report_erasure(&testbed, grpc, "hospital-1", &ErasureRequest::Leave, None).await;
    assert_auditor_pages(&browser, &console).await;
    coordinator.shutdown().await;
}

/// The operator page, never reloaded, shows every round, both charts and
/// the budget, without a script error.
async fn assert_operator_page_complete(browser: &Session) {
    let still = browser.client.execute(
        "return window.loadedOnce === true && window.consoleRefreshes > 0;",
        vec![],
    );
    assert_eq!(
        still.await.unwrap(),
        json!(true),
        "the table was updated in place"
    );
    browser
        .wait_for_count("#accuracy-chart circle.point", ROUNDS)
        .await;
    assert_eq!(browser.count("#loss-chart circle.point").await, ROUNDS);
    assert_eq!(browser.count("#epsilon-bar").await, 1);
    assert_eq!(browser.errors().await, Vec::<String>::new());
    browser.screenshot("operator").await;
}

/// The audit page shows hospital-1's erasure request and the verified log;
/// the newest model's lineage page draws its rounds, nodes and data sets.
async fn assert_auditor_pages(browser: &Session, console: &str) {
    let page = &browser.client;
    page.goto(&format!("{console}/audit")).await.unwrap();
    let erasures = page.find(Locator::Id("erasures-table")).await.unwrap();
    assert!(erasures.text().await.unwrap().contains("hospital-1"));
    page.find(Locator::Id("verified")).await.unwrap();
    assert_eq!(browser.errors().await, Vec::<String>::new());
    browser.screenshot("audit").await;

    let newest = page.find(Locator::Css("#models li a")).await.unwrap();
    let href = newest.attr("href").await.unwrap().expect("a link");
    // WebDriver answers a link's resolved URL.
    let url = if href.starts_with("http") {
        href
    } else {
        format!("{console}{href}")
    };
    page.goto(&url).await.unwrap();
    if page.find(Locator::Id("lineage-graph")).await.is_err() {
        panic!(
            "no lineage graph at {url}: {}",
            page.source().await.unwrap()
        );
    }
    assert_eq!(browser.count("#lineage-graph g.round").await, ROUNDS);
    assert_eq!(browser.count("#lineage-graph g.node").await, 2);
    assert!(browser.count("#lineage-graph g.dataset").await >= 2);
    assert_eq!(browser.errors().await, Vec::<String>::new());
    browser.screenshot("lineage").await;
}
