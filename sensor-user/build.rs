//! Builds the eBPF object (sensor-ebpf, for bpfel-unknown-none, with nightly and
//! bpf-linker) so that `vigil` can embed it; see TOOLCHAIN notes in docs/.
//! Only for Linux targets: the Windows build takes its events from ETW.
fn main() -> aya_build::Result<()> {
    println!("cargo:rerun-if-env-changed=CARGO_CFG_TARGET_OS");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Ok(());
    }
    let ebpf = aya_build::Package {
        name: "sensor-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../sensor-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default())
}
