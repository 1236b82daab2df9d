//! The committed C header must match a fresh cbindgen run over `src/ffi`.
//!
//! Set `ECR_COMPOSE_UPDATE_HEADER=1` to write the fresh header to
//! `include/ecr_compose.h` instead of failing.

use std::path::Path;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/ecr_compose.h"));

#[test]
fn header_is_current() {
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/ecr_compose.h");
    if std::env::var_os("ECR_COMPOSE_UPDATE_HEADER").is_some() {
        std::fs::write(&committed_path, GENERATED).expect("include/ecr_compose.h is writable");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default().replace("\r\n", "\n");
    assert!(
        committed == GENERATED,
        "include/ecr_compose.h differs from the header generated from src/ffi: regenerate it with ECR_COMPOSE_UPDATE_HEADER=1 cargo test --test header and commit it"
    );
}
