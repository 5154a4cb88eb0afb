//! Builds the eBPF object (sensor-ebpf, for bpfel-unknown-none, with nightly and
//! bpf-linker) so that `vigil` can embed it; see TOOLCHAIN notes in docs/.
fn main() -> aya_build::Result<()> {
    let ebpf = aya_build::Package {
        name: "sensor-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../sensor-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default())
}
