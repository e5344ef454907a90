//! The `cohort-privacy` binary end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cohort-privacy"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn epsilon_prints_the_tf_privacy_value() {
    let (ok, stdout, stderr) = run(&[
        "epsilon",
        "--sampling-rate",
        "0.004266666666666667",
        "--noise-multiplier",
        "1.12",
        "--steps",
        "14063",
        "--delta",
        "1e-5",
        "--conversion",
        "classic",
    ]);
    assert!(ok, "{stderr}");
    let eps: f64 = stdout.parse().unwrap();
    assert!((eps - 2.92).abs() < 0.03, "{eps}");
}

#[test]
fn calibrate_prints_a_sigma_and_errors_name_the_parameter() {
    let (ok, stdout, stderr) = run(&[
        "calibrate",
        "--epsilon",
        "2",
        "--delta",
        "1e-5",
        "--sampling-rate",
        "0.01",
        "--steps",
        "1000",
    ]);
    assert!(ok, "{stderr}");
    let sigma: f64 = stdout.parse().unwrap();
    assert!(sigma > 0.5 && sigma < 2.0, "{sigma}");

    let (ok, _, stderr) = run(&[
        "epsilon",
        "--sampling-rate",
        "2",
        "--noise-multiplier",
        "1",
        "--steps",
        "10",
        "--delta",
        "1e-5",
    ]);
    assert!(!ok);
    assert!(stderr.contains("sampling rate q = 2"), "{stderr}");
}

#[test]
fn ledger_prints_epsilon_per_observer() {
    use cohort_privacy::{
        CoordinatorView, DpEvent, PrivacyBudget, PrivacyLedger, RdpAccountant, RoundSpend,
    };
    let dir = std::env::temp_dir().join(format!("cohort-privacy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.json");
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(10.0, 1e-5).unwrap()).unwrap();
    let events = vec![DpEvent::poisson_sampled_discrete_gaussian(0.1, 1.0, 1).unwrap()];
    let spend = RoundSpend {
        round: 1,
        coordinator: CoordinatorView::knowing_the_sample(&events),
        events,
    };
    ledger
        .record_spend(spend, &RdpAccountant::default())
        .unwrap();
    std::fs::write(&path, serde_json::to_string(&ledger).unwrap()).unwrap();
    let (ok, stdout, stderr) = run(&["ledger", path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rounds recorded: 1"), "{stdout}");
    assert!(stdout.contains("against the released models"), "{stdout}");
    assert!(
        stdout.contains("against the coordinator (knows the sample): ε ="),
        "{stdout}"
    );

    std::fs::write(&path, "{not json").unwrap();
    let (ok, _, stderr) = run(&["ledger", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("is not a privacy ledger"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn calibrating_for_the_grid_gaussian_gives_the_sigma_that_spends_the_budget_on_it() {
    let schedule = ["--sampling-rate", "0.3", "--steps", "40"];
    let calibrate = |mechanism: &str| {
        let mut args = vec!["calibrate", "--epsilon", "8", "--delta", "1e-5"];
        args.extend(schedule);
        args.extend(["--mechanism", mechanism]);
        let (ok, stdout, stderr) = run(&args);
        assert!(ok, "{stderr}");
        stdout
    };
    let (grid, gaussian) = (calibrate("grid-gaussian"), calibrate("gaussian"));
    // The continuous σ is too little for the noise a central coordinator adds.
    assert!(grid.parse::<f64>().unwrap() > gaussian.parse::<f64>().unwrap());
    let epsilon_at = |sigma: &str| {
        let mut args = vec!["epsilon", "--noise-multiplier", sigma, "--delta", "1e-5"];
        args.extend(schedule);
        args.extend(["--mechanism", "grid-gaussian"]);
        let (ok, stdout, stderr) = run(&args);
        assert!(ok, "{stderr}");
        stdout.parse::<f64>().unwrap()
    };
    let spent = epsilon_at(&grid);
    assert!(spent <= 8.0 && spent > 7.9, "{spent}");
    assert!(epsilon_at(&gaussian) > 8.0);
}
