//! The tonic and prost code generated from the `.proto` files by `build.rs`,
//! nothing else. The crate root re-exports each package.

/// `cohort.federation.v1`: the federation's types, client and server.
#[allow(missing_debug_implementations, missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("cohort.federation.v1");
}

/// `cohort.inference.v1`: a node's encrypted-inference types, client and server.
#[allow(missing_debug_implementations, missing_docs, clippy::all)]
pub mod inference {
    tonic::include_proto!("cohort.inference.v1");
}

/// `cohort.audit.v1`: the auditor API's types, client and server.
#[allow(missing_debug_implementations, missing_docs, clippy::all)]
pub mod audit_v1 {
    tonic::include_proto!("cohort.audit.v1");
}
