//! Compiles the CO-RE accessor shim (c/shim.c) to LLVM bitcode and hands it to
//! bpf-linker, which links it into the eBPF object next to the Rust code.
use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=c");
    // Host builds (cargo check/clippy of the workspace) have nothing to link.
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("bpf") {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let bc = out.join("shim.bc");
    let endian = if env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() == Ok("big") {
        "bpfeb"
    } else {
        "bpfel"
    };
    let status = Command::new("clang")
        .args([
            "-target",
            endian,
            "-O2",
            "-g",
            "-emit-llvm",
            "-c",
            "-Wall",
            "-Werror",
        ])
        .arg("c/shim.c")
        .arg("-o")
        .arg(&bc)
        .status()
        .expect(
            "failed to run clang (apt-get install clang libbpf-dev; `cargo xtask deps` does it)",
        );
    assert!(
        status.success(),
        "clang failed to compile sensor-ebpf/c/shim.c"
    );
    println!("cargo:rustc-link-arg={}", bc.display());
    // Keep these as BPF global functions (verified once, independently of callers).
    println!("cargo:rustc-link-arg=--export=vigil_walk_decide,vigil_resolve_path");
}
