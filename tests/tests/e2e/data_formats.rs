#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A node's data may be a Parquet file or an image folder as well as CSV: a node
//! reading Parquet takes part in a federation like one reading CSV, and a bad
//! Parquet row or image file is named before the node connects to anything.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray};
use cohort_client::data::{CsvOptions, Dataset, load_csv};
use cohort_e2e::deployment::{Deployment, binary, node_output};
use cohort_e2e::within;
use image::{GrayImage, Luma};
use parquet::arrow::ArrowWriter;
use tokio::process::Command;

use crate::processes::small_federation;

/// `data` as a warehouse would export it: an id column the node must not train
/// on, the label (`diagnosis`) between the features, features named `f0…`.
fn write_parquet(data: &Dataset, path: &Path, null_at: Option<usize>) {
    let ids: Vec<String> = (0..data.len())
        .map(|row| format!("patient-{row}"))
        .collect();
    let mut columns: Vec<(String, ArrayRef)> =
        vec![("id".into(), Arc::new(StringArray::from(ids)) as ArrayRef)];
    for feature in 0..data.num_features() {
        let values = data.rows().enumerate().map(|(row, (features, _))| {
            (null_at != Some(row) || feature != 0).then_some(features[feature])
        });
        columns.push((
            format!("f{feature}"),
            Arc::new(Float32Array::from_iter(values)),
        ));
        if feature == 3 {
            let labels = data.labels().iter().map(|&label| label as i32);
            columns.push((
                "diagnosis".into(),
                Arc::new(Int32Array::from_iter_values(labels)),
            ));
        }
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn feature_names(count: usize) -> String {
    (0..count)
        .map(|feature| format!("f{feature}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn a_node_reading_parquet_takes_part_like_one_reading_csv() {
    let nodes = ["clinic-a", "clinic-b"];
    let deployment = Deployment::provision("formats", &nodes).await;
    let share = load_csv(deployment.path("clinic-b.csv"), &CsvOptions::default())
        .unwrap()
        .dataset;
    let table = deployment.path("clinic-b.parquet");
    write_parquet(&share, &table, None);
    deployment.write_config("127.0.0.1:0", &small_federation(1, nodes.len()));
    let coordinator = deployment.start_coordinator(false).await;
    let port = coordinator.port();
    let columns = feature_names(share.num_features());
    let children = [
        deployment.start_node("clinic-a", &port),
        deployment.start_node_reading(
            "clinic-b",
            &port,
            table,
            &["--label-column", "diagnosis", "--feature-columns", &columns],
        ),
    ];
    for child in children {
        let stdout = node_output(child).await;
        assert!(stdout.contains("finished after 1 rounds"), "{stdout}");
    }
}

/// Runs `cohort-node run` on `data` against a coordinator that is not there:
/// the data is read (and refused) before anything connects.
async fn refused(data: &Path, extra: &[&str]) -> String {
    let out = within(
        "cohort-node to refuse its data",
        Command::new(binary("cohort-node"))
            .args(["run", "--coordinator", "127.0.0.1:9", "--federation", "f"])
            .args(["--ca", "ca.pem", "--cert", "node.pem", "--key", "node.key"])
            .arg("--data")
            .arg(data)
            .args(extra)
            .output(),
    )
    .await
    .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_bad_parquet_row_is_named_by_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = Dataset::new(4, (0..12).map(|v| v as f32).collect(), vec![0, 1, 0]).unwrap();
    let table = dir.path().join("rows.parquet");
    write_parquet(&data, &table, Some(1));
    let stderr = refused(
        &table,
        &["--label-column", "diagnosis", "--feature-columns", "f0,f1"],
    )
    .await;
    assert!(
        stderr.contains("row 2") && stderr.contains("column \"f0\" has no value"),
        "{stderr}"
    );
    // Every other column includes the text `id`: refused by name and type.
    let stderr = refused(&table, &["--label-column", "diagnosis"]).await;
    assert!(stderr.contains("column \"id\" is Utf8"), "{stderr}");
}

#[tokio::test]
async fn a_bad_image_file_is_named_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    for class in ["benign", "malignant"] {
        std::fs::create_dir_all(scans.join(class)).unwrap();
        GrayImage::from_pixel(8, 8, Luma([7]))
            .save(scans.join(class).join("a.png"))
            .unwrap();
    }
    std::fs::write(scans.join("malignant").join("b.png"), b"not a png").unwrap();
    let stderr = refused(&scans, &["--image-size", "8x8"]).await;
    assert!(
        stderr.contains("b.png") && stderr.contains("not a readable PNG or JPEG image"),
        "{stderr}"
    );
    let stderr = refused(&scans, &[]).await;
    assert!(stderr.contains("--image-size"), "{stderr}");
}
