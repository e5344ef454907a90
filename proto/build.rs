//! Compiles the federation schema with protox (pure Rust), so building Cohort
//! needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = "proto/cohort/federation/v1/federation.proto";
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile([schema], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
