#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A node that sends what it should not: every bad update is refused with a
//! status and a message that say which rule it broke, and the round goes on.

use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::rounds::stage::StageKind;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_e2e::stages::StageCloser;
use cohort_e2e::{HandDrivenNode, Testbed, header, next_event, plan, within};
use cohort_proto::model::encode_f32;
use cohort_proto::v1::{self, update_chunk::Part};
use tonic::Code;

const ROGUE: &str = "rogue-node";

struct Upload {
    round: u64,
    base: String,
    fingerprint: Vec<u8>,
    declared_bytes: u64,
    data: Vec<u8>,
}

fn chunks(upload: &Upload) -> Vec<v1::UpdateChunk> {
    vec![
        v1::UpdateChunk {
            part: Some(Part::Header(v1::UpdateHeader {
                header: header(ROGUE),
                round: upload.round,
                base_model_version: upload.base.clone(),
                model_fingerprint: upload.fingerprint.clone(),
                num_examples: 10,
                total_bytes: upload.declared_bytes,
                train_loss: 0.5,
            })),
        },
        v1::UpdateChunk {
            part: Some(Part::Data(upload.data.clone())),
        },
    ]
}

#[tokio::test]
async fn bad_updates_are_refused_and_the_round_goes_on() {
    // Two honest nodes, a rogue one, and a silent one that keeps the fit stage
    // open until the test ends it, so every refusal below meets an open stage.
    let mut federation = plan(1, 4);
    federation.rounds.min_results = Some(2);
    let testbed = Testbed::new(federation);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let closer = StageCloser::start(&coordinator);
    let mut events = coordinator.events();
    let address = coordinator.local_addr();
    let honest = testbed.start_nodes(address, 2);

    let mut rogue = HandDrivenNode::join(&testbed, ROGUE, address).await;
    let layout = rogue.model.clone();
    let params = layout.num_parameters();
    let mut silent = HandDrivenNode::join(&testbed, "silent-node", address).await;
    let ((round, fit), _) = tokio::join!(rogue.next_fit_task(), silent.next_fit_task());
    let good = || Upload {
        round,
        base: fit.model_version.clone(),
        fingerprint: layout.fingerprint().to_vec(),
        declared_bytes: layout.num_bytes() as u64,
        data: encode_f32(&vec![0.01; params]),
    };

    let cases: Vec<(&str, Upload, Code, &str)> = vec![
        (
            "wrong length",
            Upload {
                declared_bytes: (layout.num_bytes() - 4) as u64,
                data: encode_f32(&vec![0.01; params - 1]),
                ..good()
            },
            Code::InvalidArgument,
            "declares",
        ),
        (
            "short data",
            Upload {
                data: encode_f32(&vec![0.01; params - 1]),
                ..good()
            },
            Code::InvalidArgument,
            "bytes",
        ),
        (
            "wrong fingerprint",
            Upload {
                fingerprint: vec![7; 32],
                ..good()
            },
            Code::InvalidArgument,
            "fingerprint",
        ),
        (
            "NaN",
            Upload {
                data: encode_f32(&[vec![0.0; params - 1], vec![f32::NAN]].concat()),
                ..good()
            },
            Code::InvalidArgument,
            "NaN",
        ),
        (
            "infinity",
            Upload {
                data: encode_f32(&[vec![f32::INFINITY], vec![0.0; params - 1]].concat()),
                ..good()
            },
            Code::InvalidArgument,
            "infinite",
        ),
        (
            "stale round",
            Upload {
                round: round + 5,
                ..good()
            },
            Code::FailedPrecondition,
            "in progress",
        ),
        (
            "wrong base model",
            Upload {
                base: "0".repeat(64),
                ..good()
            },
            Code::FailedPrecondition,
            "model",
        ),
    ];
    for (what, upload, code, says) in cases {
        let error = rogue
            .client
            .submit_update(tokio_stream::iter(chunks(&upload)))
            .await
            .expect_err(what);
        assert_eq!(error.code(), code, "{what}: {error}");
        assert!(
            error.message().contains(says),
            "{what}: {:?} should say {says:?}",
            error.message()
        );
    }

    // A message above the size limit is refused by the transport itself.
    let oversized = Upload {
        data: vec![0; cohort_proto::MAX_MESSAGE_BYTES + 1],
        ..good()
    };
    let error = rogue
        .client
        .submit_update(tokio_stream::iter(chunks(&oversized)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::OutOfRange, "{error}");

    // A well-formed update is taken once; a second one for the same round is not.
    rogue
        .client
        .submit_update(tokio_stream::iter(chunks(&good())))
        .await
        .unwrap();
    let error = rogue
        .client
        .submit_update(tokio_stream::iter(chunks(&good())))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("already submitted"),
        "{}",
        error.message()
    );

    // At the stage's end (as at its deadline: only the silent node is left)
    // the round completes with the three accepted updates.
    closer.silent("silent-node", StageKind::Fit, round);
    let contributors = next_event(&mut events, |event| match event {
        FederationEvent::RoundCompleted(record) => match &record.outcome {
            RoundOutcome::Completed { contributions, .. } => Some(
                contributions
                    .iter()
                    .map(|c| c.node_id.clone())
                    .collect::<Vec<_>>(),
            ),
            RoundOutcome::Failed { .. } => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(contributors, vec!["hospital-0", "hospital-1", ROGUE]);
    within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    for node in honest {
        within("a node to finish", node).await.unwrap().unwrap();
    }
    coordinator.shutdown().await;
}
