use anyhow::Result;
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));
pub fn load(only: &[String]) -> Result<aya::Ebpf> {
    let mut ebpf = aya::Ebpf::load(OBJECT)?;
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    for name in names {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let prog = ebpf.program_mut(&name).unwrap();
        match prog {
            aya::programs::Program::TracePoint(tp) => {
                let cat = if name.starts_with("sys_") {
                    "syscalls"
                } else {
                    "sched"
                };
                if let Err(e) = tp.load() {
                    eprintln!("load {name}: {e:?}");
                    continue;
                }
                if let Err(e) = tp.attach(cat, &name) {
                    eprintln!("attach {name}: {e}");
                }
            }
            aya::programs::Program::BtfTracePoint(tp) => {
                let btf = aya::Btf::from_sys_fs()?;
                if let Err(e) = tp.load(&name, &btf) {
                    eprintln!("load {name}: {e:?}");
                    continue;
                }
                if let Err(e) = tp.attach() {
                    eprintln!("attach {name}: {e}");
                }
            }
            _ => {}
        }
    }
    Ok(ebpf)
}
