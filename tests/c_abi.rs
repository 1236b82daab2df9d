//! Compiles `tests/c/abi_test.c` against the committed header and the built
//! cdylib, then runs it against the STS stand-in, plain and under valgrind.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::StandIns;

/// Returns the folder of the cdylib for this test run (`target/debug`),
/// after bringing the cdylib up to date: `cargo test` builds only the rlib
/// that the tests link, so the cdylib may be missing or stale.
fn library_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf();
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
            let mut command = Command::new(env!("CARGO"));
            command.args(["build", "--lib", "--manifest-path"]).arg(manifest);
            if dir.ends_with("release") {
                command.arg("--release");
            }
            let status = command.status().expect("run cargo build --lib");
            assert!(status.success(), "cargo build --lib failed");
            dir
        })
        .clone()
}

fn compile(output: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let library = library_dir();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/abi_test.c"))
        .arg("-L")
        .arg(&library)
        .arg(format!("-Wl,-rpath,{}", library.display()))
        .args(["-lecr_compose", "-lpthread", "-o"])
        .arg(output)
        .status()
        .expect("run the C compiler (cc)");
    assert!(status.success(), "tests/c/abi_test.c did not compile against include/ecr_compose.h");
}

fn run(stand_ins: &StandIns, program: &Path, wrapper: &[&str]) -> std::process::Output {
    let mut command = if wrapper.is_empty() {
        Command::new(program)
    } else {
        let mut command = Command::new(wrapper[0]);
        command.args(&wrapper[1..]).arg(program);
        command
    };
    stand_ins.apply_env(&mut command);
    command
        .env("ECR_TEST_ENDPOINT", stand_ins.sts_endpoint())
        .env("ECR_TEST_REGION", &stand_ins.region)
        .env("ECR_TEST_SERIAL", &stand_ins.serial_number)
        .env("ECR_TEST_WRONG_CODE", &stand_ins.wrong_token_code);
    command.output().expect("run the C ABI test program")
}

#[test]
fn c_program_calls_abi() {
    let stand_ins = StandIns::start(&["sts"]);
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("abi_test");
    compile(&program);
    let output = run(&stand_ins, &program, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "C ABI test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains(&stand_ins.secret_access_key), "the base secret key leaked into the output");
}

#[test]
fn c_program_is_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed; skipped (scripts/bootstrap.sh installs it)");
        return;
    }
    let stand_ins = StandIns::start(&["sts"]);
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("abi_test");
    compile(&program);
    // Threads of the shared runtime live until exit by design, so only
    // definite leaks and memory errors count.
    let output = run(
        &stand_ins,
        &program,
        &["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "valgrind reported errors (exit {:?}):\n{stderr}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout)
    );
}
