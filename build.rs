//! Generates the C header from `src/ffi` into `$OUT_DIR/ecr_compose.h`.
//!
//! The committed copy in `include/` is compared with this one by the
//! `header` test, so a change of the ABI without a new header fails CI.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    // Only the ABI's files are parsed, so constants of the core never reach the header.
    let generated = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_src(crate_dir.join("src/ffi/operation.rs"))
        .with_src(crate_dir.join("src/error.rs"))
        .generate();
    match generated {
        Ok(bindings) => {
            bindings.write_to_file(out_dir.join("ecr_compose.h"));
        }
        Err(error) => panic!("cbindgen could not generate the header: {error}"),
    }
}
