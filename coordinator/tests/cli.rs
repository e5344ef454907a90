//! The `cohort-coordinator` command line: PKI management and config refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn coordinator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cohort-coordinator"))
        .args(args)
        .output()
        .expect("runs cohort-coordinator")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn pki_init_and_issue_write_private_keys_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let dir = dir.to_str().unwrap();
    assert!(coordinator(&["pki", "init", "--dir", dir]).status.success());
    let out = coordinator(&["pki", "issue", "--dir", dir, "--node", "hospital-a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = coordinator(&[
        "pki",
        "issue",
        "--dir",
        dir,
        "--coordinator",
        "main",
        "--san",
        "localhost",
        "--san",
        "127.0.0.1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = coordinator(&["pki", "issue", "--dir", dir, "--operator", "ops"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cohort://operator/ops"));
    for key in [
        "ca.key",
        "node-hospital-a.key",
        "coordinator-main.key",
        "operator-ops.key",
    ] {
        assert_eq!(mode(&Path::new(dir).join(key)), 0o600, "{key}");
    }

    // Nothing is overwritten, and bad names are refused with the reason.
    let again = coordinator(&["pki", "init", "--dir", dir]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = coordinator(&["pki", "issue", "--dir", dir, "--node", "Hospital A"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid name"));
    let two = [
        "pki",
        "issue",
        "--dir",
        dir,
        "--node",
        "a",
        "--operator",
        "b",
    ];
    assert!(!coordinator(&two).status.success());
}

const CONFIG: &str = r#"
federation_id = "cli"

[server]
listen = "127.0.0.1:0"
state_dir = "state"
ca_certificate = "pki/ca.pem"
certificate = "pki/coordinator-main.pem"
private_key = "pki/coordinator-main.key"

[model]
kind = "logistic_regression"
num_features = 30
num_classes = 2

[rounds]
count = 2
min_clients = 2
deadline_secs = 30

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.05
"#;

#[test]
fn serve_refuses_bad_configs_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (from, to, named) in [
        ("count = 2", "count = 2\ncuont = 3", "cuont"),
        ("count = 2", "count = 0", "rounds.count"),
        (
            "min_clients = 2",
            "min_clients = 2\nfraction = 1.5",
            "rounds.fraction",
        ),
    ] {
        let path = tmp.path().join("federation.toml");
        std::fs::write(&path, CONFIG.replace(from, to)).unwrap();
        let out = coordinator(&["serve", "--config", path.to_str().unwrap()]);
        assert!(!out.status.success(), "{to}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{to}: {stderr}");
    }
    assert!(
        !tmp.path().join("state").exists(),
        "a refused config touches no state"
    );
}

/// The federation of the audit logs these tests write.
const AUDITED: &str = "cli-tests";

/// A store that records `AUDITED` as its federation (as a coordinator's does)
/// and its audit log, keyed by `key` (created if missing).
async fn audited_store(
    state: &Path,
    key: &Path,
) -> (
    cohort_coordinator::store::Store,
    cohort_coordinator::audit::AuditLog,
) {
    use cohort_coordinator::store::{FederationDefinition, Store, StoreLocation};
    let store = Store::open(&StoreLocation::Folder(state.to_owned()))
        .await
        .unwrap();
    store
        .check_definition(&FederationDefinition {
            federation_id: AUDITED.into(),
            model_fingerprint: "test".into(),
            model_description: "test".into(),
        })
        .await
        .unwrap();
    let log = cohort_coordinator::audit::AuditLog::open(&store, key, AUDITED)
        .await
        .unwrap();
    (store, log)
}

/// `audit verify` on the state `location` names succeeds, saying `counts`.
fn verifies(location: &[&str], counts: &str) {
    let out = coordinator(&[&["audit", "verify"], location].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(counts), "{stdout}");
}

#[tokio::test]
async fn audit_verify_checks_the_log_against_the_trusted_key() {
    use cohort_coordinator::audit::AuditEvent;

    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    {
        let (store, log) = audited_store(&state, &state.join("audit-signing.key")).await;
        for reason in ["one", "two", "three"] {
            log.append(
                &store,
                vec![AuditEvent::FederationStopped {
                    reason: reason.into(),
                }],
            )
            .await
            .unwrap();
        }
    }
    let state = state.to_str().unwrap();
    verifies(&["--state", state], "3 entries, 3 signed tree heads");

    // Another key (an impostor's) does not verify the heads.
    let out = coordinator(&[
        "audit",
        "verify",
        "--state",
        state,
        "--public-key",
        &"ab".repeat(32),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tree head over 1 entries"), "{stderr}");
}

#[tokio::test]
async fn audit_lineage_erasures_export_and_seen_head_answer_from_the_log() {
    use cohort_coordinator::audit::{AuditEvent, ErasureScope};

    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (seen, public_key) = {
        let (store, log) = audited_store(&state, &state.join("audit-signing.key")).await;
        let seen = log
            .append(
                &store,
                vec![AuditEvent::RoundCompleted {
                    round: 1,
                    attempt: 1,
                    strategy: "fedavg".into(),
                    model_in: "m0".into(),
                    model_out: "m1".into(),
                    contributors: vec!["hospital-a".into()],
                    epsilon_spent: None,
                    datasets: Vec::new(),
                    protection: Default::default(),
                }],
            )
            .await
            .unwrap();
        log.append(
            &store,
            vec![AuditEvent::ErasureReceived {
                request_id: "r1".into(),
                node_id: "hospital-a".into(),
                scope: ErasureScope::NodeLeaving,
                // Long past: open and overdue.
                deadline_ms: 1,
            }],
        )
        .await
        .unwrap();
        (seen, log.public_key())
    };
    let state = state.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = coordinator(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let lineage = ok(&["audit", "lineage", "--state", state, "--model", "m1"]);
    assert!(lineage.contains("\"initial_model\": \"m0\""), "{lineage}");
    let influenced = ok(&["audit", "lineage", "--state", state, "--node", "hospital-a"]);
    assert!(
        influenced.contains("\"model_version\": \"m1\""),
        "{influenced}"
    );
    let overdue = ok(&["audit", "erasures", "--state", state, "--overdue"]);
    assert!(overdue.contains("\"request_id\": \"r1\""), "{overdue}");
    let export = ok(&["audit", "export", "--state", state, "--format", "json"]);
    assert!(export.contains("\"tree_size\": 2"), "{export}");

    // A seen head (kept by the auditor between checks) must be extended; the
    // file then moves on to the current head.
    let seen_path = tmp.path().join("seen-head.json");
    let seen_file = |root: String| {
        let json = format!(
            "{{\"federation_id\": \"{AUDITED}\", \"tree_size\": 1, \"root_hash\": \"{root}\", \
             \"public_key\": \"{}\"}}",
            hex::encode(public_key)
        );
        std::fs::write(&seen_path, json).unwrap();
    };
    seen_file(seen.root_hash.to_string());
    let seen_arg = seen_path.to_str().unwrap();
    let verified = ok(&["audit", "verify", "--state", state, "--seen-head", seen_arg]);
    assert!(verified.contains("consistent with the tree head seen at size 1"));
    let moved = std::fs::read_to_string(&seen_path).unwrap();
    assert!(moved.contains("\"tree_size\": 2"), "{moved}");
    seen_file("00".repeat(32));
    let out = coordinator(&["audit", "verify", "--state", state, "--seen-head", seen_arg]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not extend the tree head seen earlier"),
        "{stderr}"
    );
}

#[tokio::test]
async fn audit_compare_heads_tells_a_consistent_view_from_a_split_view() {
    use cohort_coordinator::audit::AuditEvent;
    use cohort_coordinator::audit::seen_head::SeenHead;

    let tmp = tempfile::tempdir().unwrap();
    let (state, fork) = (tmp.path().join("state"), tmp.path().join("fork"));
    let event = |reason: &str| {
        vec![AuditEvent::FederationStopped {
            reason: reason.into(),
        }]
    };
    // Two logs under one key and one federation: what a coordinator showing
    // two auditors different histories would sign.
    let path = |name: &str| {
        let file = tmp.path().join(format!("{name}.json"));
        file.to_str().unwrap().to_owned()
    };
    for (dir, reasons, name) in [(&state, ["a", "b"], "two"), (&fork, ["a", "x"], "fork")] {
        let key = dir.join("audit-signing.key");
        if name == "fork" {
            // The same key (a copy keeps its 0600).
            std::fs::create_dir_all(dir).unwrap();
            std::fs::copy(state.join("audit-signing.key"), &key).unwrap();
        }
        let (store, log) = audited_store(dir, &key).await;
        let first = log.append(&store, event(reasons[0])).await.unwrap();
        if name == "two" {
            let one = SeenHead {
                federation_id: AUDITED.into(),
                tree_size: 1,
                root_hash: first.root_hash,
                public_key: log.public_key().to_vec(),
                signed_tree_head: Some(first),
            };
            one.save(Path::new(&path("one"))).unwrap();
        }
        log.append(&store, event(reasons[1])).await.unwrap();
        drop((store, log));
        let dir = dir.to_str().unwrap();
        let out = coordinator(&[
            "audit",
            "verify",
            "--state",
            dir,
            "--seen-head",
            &path(name),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let compare = |a: &str, b: &str, log: &[&str]| {
        let mut args = vec!["audit", "compare-heads"];
        let (a, b) = (path(a), path(b));
        args.extend([a.as_str(), b.as_str()]);
        args.extend(log);
        let out = coordinator(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let with_log = ["--state", state.to_str().unwrap()];

    // The same head, and a prefix proved by the log: consistent.
    let (code, text) = compare("two", "two", &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("consistent"), "{text}");
    let (code, text) = compare("one", "two", &with_log);
    assert_eq!(code, Some(0), "{text}");
    // Different sizes and no log: cannot be told.
    let (code, text) = compare("one", "two", &[]);
    assert_eq!(code, Some(3), "{text}");
    // Equal sizes, different roots; a head the log does not extend: split views.
    let (code, text) = compare("two", "fork", &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("split view"), "{text}");
    let (code, text) = compare("one", "fork", &with_log);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("split view"), "{text}");
}

/// What `serve` writes to stderr, redirected to a file (not a terminal),
/// until it listens; it is then stopped with SIGTERM.
fn served_log(extra: &[&str]) -> String {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki = pki.to_str().unwrap();
    assert!(coordinator(&["pki", "init", "--dir", pki]).status.success());
    let issue = ["pki", "issue", "--dir", pki, "--coordinator", "main"];
    assert!(coordinator(&issue).status.success());
    std::fs::write(tmp.path().join("federation.toml"), CONFIG).unwrap();
    let log_path = tmp.path().join("coordinator.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cohort-coordinator"))
        .current_dir(tmp.path())
        .env_remove("RUST_LOG")
        .args(["serve", "--config", "federation.toml"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("runs cohort-coordinator");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let listening = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("cohort-coordinator listening on"));
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(listening, "{log}");
    log
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let log = served_log(&[]);
    assert!(!log.contains("\x1b["), "{log:?}");
    assert!(
        log.lines()
            .any(|line| line.contains(" INFO ") && line.contains("coordinator listening")),
        "{log}"
    );
}

#[test]
fn log_format_json_writes_one_object_a_line_with_level_and_fields() {
    let log = served_log(&["--log-format", "json"]);
    assert!(!log.contains("\x1b["), "{log:?}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for line in &lines {
        assert!(line["level"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let listening = lines
        .iter()
        .find(|line| line["fields"]["message"] == "coordinator listening (mutual TLS 1.3)")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(listening["level"], "INFO");
    assert!(listening["fields"]["local_addr"].is_string(), "{listening}");
    assert!(log.contains("stopping"), "{log}");

    let refused = coordinator(&["--log-format", "xml", "pki", "init", "--dir", "x"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("possible values: text, json"), "{stderr}");
}

/// `store migrate` copies a stopped coordinator's state folder into an empty
/// database and verifies its audit log there; the auditor commands then read
/// the database (`--postgres`, the audit key from `--state`); a second
/// migration into the same database is refused; the password in the URL is
/// never printed.
#[tokio::test]
async fn store_migrate_copies_verifies_and_the_auditor_commands_read_postgres() {
    use cohort_coordinator::audit::AuditEvent;
    use cohort_coordinator::store::postgres::scratch::ScratchServer;

    let Some(server) = ScratchServer::start().unwrap() else {
        return;
    };
    let database = server.database("migrated").unwrap();
    // Trust authentication ignores it; it must still never be printed.
    let url = database
        .postgres
        .replace("cohort@", "cohort:s3cret-password@");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    {
        let (store, log) = audited_store(&state, &state.join("audit-signing.key")).await;
        for reason in ["one", "two"] {
            let event = AuditEvent::FederationStopped {
                reason: reason.into(),
            };
            log.append(&store, vec![event]).await.unwrap();
        }
    }
    let state = state.to_str().unwrap();
    let migrate = ["store", "migrate", "--from", state, "--to", &url];
    let out = coordinator(&migrate);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("audit_entries: 2"), "{stdout}");
    assert!(
        stdout.contains("audit log verified in PostgreSQL: 2 entries, 2 signed tree heads"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("s3cret") && stdout.contains("cohort:***@"),
        "{stdout}"
    );

    // Given a folder with only the audit key: it cannot have read the sled
    // copy instead.
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = std::path::Path::new(state).join("audit-signing.key");
    std::fs::copy(key, keys.join("audit-signing.key")).unwrap();
    verifies(
        &["--postgres", &url, "--state", keys.to_str().unwrap()],
        "2 entries, 2 signed tree heads",
    );
    let ledger = coordinator(&["privacy-ledger", "--postgres", &url]);
    let stderr = String::from_utf8_lossy(&ledger.stderr);
    assert!(stderr.contains("holds no privacy ledger"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let again = coordinator(&migrate);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("target database is not empty"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
}

/// `model init --from FILE` prints a `[model]` section that a config takes as
/// it is, naming the file's model and the file; a file that is no model is
/// refused, named.
#[test]
fn model_init_prints_the_section_of_a_model_file_and_refuses_other_files() {
    use cohort_coordinator::config::FederationConfig;
    use cohort_proto::export::ModelFile;
    use cohort_proto::model::{ModelDescriptor, TensorSpec};

    let tmp = tempfile::tempdir().unwrap();
    let descriptor = ModelDescriptor::new(
        "cli.conv1d",
        "2",
        vec![
            TensorSpec::f32("conv.weight", vec![4, 1, 5]),
            TensorSpec::f32("head.weight", vec![104, 2]),
        ],
    )
    .unwrap();
    let file = ModelFile::new(descriptor.clone(), vec![0.25; 20 + 208]).unwrap();
    let path = tmp.path().join("first.safetensors");
    std::fs::write(&path, file.to_safetensors(Vec::new()).unwrap()).unwrap();
    let args = ["--num-features", "30", "--num-classes", "2"];
    let out = coordinator(
        &[
            &["model", "init", "--from", path.to_str().unwrap()][..],
            &args,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let section = String::from_utf8(out.stdout).unwrap();
    assert!(section.contains(file.model_version()), "{section}");

    let start = CONFIG.find("[model]").unwrap();
    let end = CONFIG.find("[rounds]").unwrap();
    let config = format!("{}{section}\n{}", &CONFIG[..start], &CONFIG[end..]);
    let parsed = FederationConfig::parse(&config).unwrap();
    assert_eq!(parsed.model.descriptor, Some(descriptor));
    assert_eq!(parsed.model.initial_parameters, Some(path.clone()));

    std::fs::write(&path, b"not a model").unwrap();
    let out = coordinator(
        &[
            &["model", "init", "--from", path.to_str().unwrap()][..],
            &args,
        ]
        .concat(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
}
