//! Homomorphic-encryption inference: keygen, key sizes, per-prediction latency and
//! throughput, bit widths and accuracy.
//!
//! `CARGO_TARGET_DIR=… cargo bench -p cohort-crypto --features he --bench he`
//! Environment: `HE_BENCH_LR_ROWS` (default 40) and `HE_BENCH_MLP_ROWS` (default 4)
//! encrypted predictions per model; `HE_BENCH_HIDDEN` (default 32) hidden width;
//! `HE_BENCH_CLASS_ROWS` (default 10) predictions in class mode (argmax-only
//! output) per model that supports it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that fails should stop.

#[path = "../tests/he_support.rs"]
mod he_support;

use std::time::{Duration, Instant};

use cohort_crypto::he::{
    ArgmaxPlan, BitsConfig, EncryptedClass, EncryptedInput, EncryptedScores, EvaluationKey, PARAMS,
    QuantizedModel, SizeLimits, decrypt, decrypt_class, encrypt, evaluate, evaluate_class, keygen,
};
use he_support::{breast_cancer, digits, layout, split_standardize, train};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Run {
    name: String,
    summary: String,
    float_acc: f64,
    quant_acc: f64,
    test_rows: usize,
    encrypt: Duration,
    evaluate: Duration,
    decrypt: Duration,
    input_bytes: usize,
    scores_bytes: usize,
    rows: usize,
    total: Duration,
    mismatches: usize,
    class_mode: Result<ClassRun, String>,
}

/// Class mode (argmax-only output) on the same model, or why it is refused.
struct ClassRun {
    bootstraps: usize,
    evaluate: Duration,
    class_bytes: usize,
    rows: usize,
    mismatches: usize,
}

/// Evaluates `rows` inputs in class mode; each decrypted class is compared with
/// the clear argmax.
fn run_class_mode(
    model: &QuantizedModel,
    test_x: &[Vec<f32>],
    rows: usize,
    client: &cohort_crypto::he::ClientKey,
    eval: &EvaluationKey,
) -> Result<ClassRun, String> {
    let plan = ArgmaxPlan::for_model(model).map_err(|e| e.to_string())?;
    let limits = SizeLimits::default();
    let (mut times, mut class_bytes, mut mismatches) = (Vec::new(), 0, 0);
    for x in test_x.iter().cycle().take(rows) {
        let q = model.quantize_input(x).expect("quantize input");
        let bytes = encrypt(client, &q)
            .and_then(|ct| ct.to_bytes(&limits))
            .expect("input");
        let t = Instant::now();
        let input = EncryptedInput::from_bytes(&bytes, &limits).expect("read input");
        let class = evaluate_class(eval, model, &plan, &input).expect("evaluate class");
        let out = class.to_bytes(&limits).expect("class bytes");
        times.push(t.elapsed());
        class_bytes = out.len();
        let class = EncryptedClass::from_bytes(&out, &limits).expect("read class");
        let decrypted = decrypt_class(client, &class).expect("decrypt class");
        mismatches += usize::from(decrypted != model.predict_clear(&q).expect("clear"));
    }
    Ok(ClassRun {
        bootstraps: plan.bootstrap_count(),
        evaluate: median(times),
        class_bytes,
        rows,
        mismatches,
    })
}

fn run(
    name: &str,
    widths: &[usize],
    data: (Vec<Vec<f32>>, Vec<usize>),
    (epochs, lr): (usize, f32),
    (rows, class_rows): (usize, usize),
    client: &cohort_crypto::he::ClientKey,
    eval: &EvaluationKey,
) -> Run {
    let split = split_standardize(&data.0, &data.1, 0.7, 1);
    let layout = layout(widths);
    let params = train(&layout, &split.train_x, &split.train_y, epochs, lr, 2);
    let model = QuantizedModel::from_float(&layout, &params, &split.train_x, BitsConfig::default())
        .expect("quantize");
    let acc = model
        .accuracy_vs_float(&layout, &params, &split.test_x, &split.test_y)
        .expect("accuracy");
    let limits = SizeLimits::default();
    let (mut enc, mut ev, mut dec) = (Vec::new(), Vec::new(), Vec::new());
    let (mut input_bytes, mut scores_bytes, mut mismatches) = (0, 0, 0);
    let start = Instant::now();
    for x in split.test_x.iter().cycle().take(rows) {
        let q = model.quantize_input(x).expect("quantize input");
        let t = Instant::now();
        let input = encrypt(client, &q).expect("encrypt");
        let bytes = input.to_bytes(&limits).expect("input bytes");
        enc.push(t.elapsed());
        input_bytes = bytes.len();
        let t = Instant::now();
        let input = EncryptedInput::from_bytes(&bytes, &limits).expect("read input");
        let scores = evaluate(eval, &model, &input).expect("evaluate");
        let out = scores.to_bytes(&limits).expect("score bytes");
        ev.push(t.elapsed());
        scores_bytes = out.len();
        let t = Instant::now();
        let scores = EncryptedScores::from_bytes(&out, &limits).expect("read scores");
        let decrypted = decrypt(client, &scores);
        dec.push(t.elapsed());
        if decrypted != model.scores_clear(&q).expect("clear") {
            mismatches += 1;
        }
    }
    let total = start.elapsed();
    let class_mode = run_class_mode(&model, &split.test_x, class_rows, client, eval);
    Run {
        name: name.to_owned(),
        summary: model.summary(),
        float_acc: acc.float_accuracy(),
        quant_acc: acc.quantized_accuracy(),
        test_rows: acc.rows,
        encrypt: median(enc),
        evaluate: median(ev),
        decrypt: median(dec),
        input_bytes,
        scores_bytes,
        rows,
        total,
        mismatches,
        class_mode,
    }
}

fn main() {
    let lr_rows = env_usize("HE_BENCH_LR_ROWS", 40);
    let mlp_rows = env_usize("HE_BENCH_MLP_ROWS", 4);
    let hidden = env_usize("HE_BENCH_HIDDEN", 32);
    let class_rows = env_usize("HE_BENCH_CLASS_ROWS", 10);
    println!("threads: {}", rayon::current_num_threads());
    let t = Instant::now();
    let (client, compressed) = keygen(None).expect("keygen");
    let keygen_time = t.elapsed();
    let limits = SizeLimits::default();
    let key_bytes = compressed.to_bytes(&limits).expect("key bytes");
    let t = Instant::now();
    let eval = EvaluationKey::from_bytes(&key_bytes, &limits).expect("expand");
    let expand_time = t.elapsed();
    println!("keygen {keygen_time:?}; node: read + expand evaluation key {expand_time:?}");
    println!(
        "evaluation key: compressed {:.1} MiB on the wire, expanded {:.1} MiB (standard domain)",
        key_bytes.len() as f64 / (1 << 20) as f64,
        PARAMS.expanded_key_payload_bytes() as f64 / (1 << 20) as f64
    );

    let lr = run(
        "(a) LR, breast cancer 30→2",
        &[30, 2],
        breast_cancer(),
        (30, 0.01),
        (lr_rows, class_rows),
        &client,
        &eval,
    );
    let mlp = run(
        &format!("(b) MLP, digits 64→{hidden}→10"),
        &[64, hidden, 10],
        digits(),
        (15, 0.02),
        (mlp_rows, class_rows),
        &client,
        &eval,
    );
    println!();
    println!(
        "| model | bit widths | float acc | quantized acc | encrypt | evaluate (node) | decrypt | throughput | input / scores bytes | exact |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in [&lr, &mlp] {
        println!(
            "| {} | {} | {:.2}% | {:.2}% ({} rows) | {:.2?} | {:.2?} | {:.2?} | {:.2}/s | {} / {} | {}/{} |",
            r.name,
            r.summary,
            r.float_acc * 100.0,
            r.quant_acc * 100.0,
            r.test_rows,
            r.encrypt,
            r.evaluate,
            r.decrypt,
            r.rows as f64 / r.total.as_secs_f64(),
            r.input_bytes,
            r.scores_bytes,
            r.rows - r.mismatches,
            r.rows
        );
    }
    println!();
    println!("class mode (argmax-only output):");
    let mut class_mismatches = 0;
    for r in [&lr, &mlp] {
        match &r.class_mode {
            Ok(c) => {
                println!(
                    "| {} | +{} bootstraps | evaluate (node) {:.2?} | class {} bytes | {}/{} classes = clear |",
                    r.name,
                    c.bootstraps,
                    c.evaluate,
                    c.class_bytes,
                    c.rows - c.mismatches,
                    c.rows
                );
                class_mismatches += c.mismatches;
            }
            Err(refused) => println!("| {} | refused: {refused} |", r.name),
        }
    }
    if lr.mismatches + mlp.mismatches + class_mismatches > 0 {
        eprintln!("encrypted answers differed from the clear ones");
        std::process::exit(1);
    }
}
