//! Compiles the federation, encrypted-inference and auditor schemas with protox
//! (pure Rust), so building Cohort needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schemas = [
        "proto/cohort/federation/v1/federation.proto",
        "proto/cohort/inference/v1/inference.proto",
        "proto/cohort/audit/v1/audit.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(schemas, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
