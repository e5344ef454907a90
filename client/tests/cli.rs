//! The `cohort-node` command line: bad data is refused before anything connects;
//! without feature `he` the encrypted-inference commands say how to get them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

use std::process::{Command, Output};

fn run_node(data: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cohort-node"))
        .args(["run", "--coordinator", "127.0.0.1:9", "--federation", "f"])
        .args(["--ca", "ca.pem", "--cert", "node.pem", "--key", "node.key"])
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .expect("runs cohort-node")
}

#[test]
fn malformed_rows_are_named_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("rows.csv");
    std::fs::write(&data, "1.0,2.0,0\n3.0,oops,1\n5.0,6.0,1\n").unwrap();
    let out = run_node(&data, &["--bad-rows", "reject"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("oops"),
        "{stderr}"
    );
}

#[test]
fn log_format_is_text_or_json() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("empty.csv");
    std::fs::write(&data, "a,b,c\n").unwrap();
    let json = run_node(&data, &["--bad-rows", "skip", "--log-format", "json"]);
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(stderr.contains("no usable rows"), "{stderr}");
    let xml = run_node(&data, &["--log-format", "xml"]);
    let stderr = String::from_utf8_lossy(&xml.stderr);
    assert!(stderr.contains("possible values: text, json"), "{stderr}");
}

#[test]
fn a_file_with_no_usable_rows_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("empty.csv");
    std::fs::write(&data, "a,b,c\nx,y,z\n").unwrap();
    let out = run_node(&data, &["--bad-rows", "skip"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no usable rows"), "{stderr}");
}

/// A node built without feature `he` still lists `inference` and `he`, and
/// refuses them naming the build that has them (not "unrecognized subcommand").
#[cfg(not(feature = "he"))]
#[test]
fn encrypted_inference_commands_name_the_build_that_has_them() {
    for args in [
        &["inference", "serve", "--listen", "127.0.0.1:0"][..],
        &["he", "keygen", "--out", "keys"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cohort-node"))
            .args(args)
            .output()
            .expect("runs cohort-node");
        assert!(!out.status.success(), "{args:?} refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "`cohort-node {}` needs encrypted inference",
                args[0]
            )) && stderr.contains("--features he"),
            "{stderr}"
        );
    }
}

/// A node built without `parquet` or `images` refuses such data naming the
/// build that reads it (not a CSV parse error on binary data).
#[cfg(not(any(feature = "parquet", feature = "images")))]
#[test]
fn other_data_formats_name_the_build_that_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("visits.parquet");
    std::fs::write(&table, b"PAR1").unwrap();
    let stderr = String::from_utf8_lossy(&run_node(&table, &[]).stderr).into_owned();
    assert!(stderr.contains("--features parquet"), "{stderr}");
    let stderr = String::from_utf8_lossy(&run_node(tmp.path(), &[]).stderr).into_owned();
    assert!(stderr.contains("--features images"), "{stderr}");
}

/// A flag the data's format does not read is refused by name, not ignored.
#[test]
fn a_flag_for_another_format_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("rows.csv");
    std::fs::write(&data, "1.0,2.0,0\n").unwrap();
    let out = run_node(&data, &["--feature-columns", "age,bmi"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is CSV, which does not read --feature-columns"),
        "{stderr}"
    );
}
