#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A stateful strategy (FedAdam's moments) survives a coordinator restart: the
//! state is committed with each round, restored at start-up, and a federation
//! stopped after round 2 and resumed ends with exactly the model of the same
//! federation run without a stop. Starting the moments afresh would give a
//! different model (checked: the moments after round 2 are not their initial
//! values).

use cohort_coordinator::store::{SledStore, Store};
use cohort_e2e::{Testbed, fedadam, finish, plan};

const ROUNDS: u64 = 4;
const NODES: usize = 3;

fn fedadam_testbed() -> Testbed {
    let mut plan = plan(ROUNDS, NODES);
    plan.strategy = fedadam();
    Testbed::new(plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedadam_moments_survive_a_restart() {
    let testbed = fedadam_testbed();
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let nodes = testbed.start_nodes(coordinator.local_addr(), NODES);
    let (uninterrupted, _) = finish(coordinator, nodes).await;
    assert_eq!(uninterrupted.completed_rounds, ROUNDS);

    let testbed = fedadam_testbed();
    let (address, nodes) = testbed.run_until_round(2, NODES).await;
    {
        let store = Store::from(SledStore::open(&testbed.dir.path().join("state")).unwrap());
        let saved = store
            .strategy_state()
            .await
            .unwrap()
            .expect("state committed");
        assert_eq!(saved.strategy, "fedadam");
        let tau_squared = 1e-6f32;
        assert!(
            saved.buffers["v"]
                .iter()
                .any(|&x| (x - tau_squared).abs() > 1e-9),
            "v moved from τ²"
        );
        assert!(saved.buffers["m"].iter().any(|&x| x != 0.0));
    }

    let coordinator = testbed.start_coordinator(address).await;
    let (head, _) = finish(coordinator, nodes).await;
    assert_eq!(head.completed_rounds, ROUNDS);
    assert_eq!(
        head.model_version, uninterrupted.model_version,
        "the resumed federation ends where the uninterrupted one does"
    );
}
