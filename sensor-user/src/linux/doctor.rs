//! `vigil doctor`: what this kernel lets Vigil hook, and what the resulting set
//! cannot see. Every hook is really loaded and attached (then dropped), so the
//! answer is the kernel's, with its errno, not a guess from config files.
use super::loader::{self, VfsHook, ALWAYS_BLIND, VFS_HOOKS};
use crate::config::Tier;
use anyhow::Result;
use aya::programs::Program;
use serde_json::{json, Value};
use std::path::Path;

/// One VFS hook: what each tier said, and the tier `vigil run` would use.
struct HookReport {
    hook: &'static VfsHook,
    fentry: std::result::Result<(), String>,
    kprobe: std::result::Result<(), String>,
    chosen: &'static str,
}

pub fn run(as_json: bool, tier: Tier) -> Result<()> {
    let report = gather(tier);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The selected lockdown mode: `[integrity]` in "none [integrity] confidentiality".
fn lockdown() -> Option<String> {
    let s = read_trim("/sys/kernel/security/lockdown")?;
    let start = s.find('[')?;
    let end = s[start..].find(']')?;
    Some(s[start + 1..start + end].to_string())
}

fn gather(tier: Tier) -> Value {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    let lsm = read_trim("/sys/kernel/security/lsm");
    let bpf_lsm = lsm.as_deref().map(|l| l.split(',').any(|m| m == "bpf"));
    let securityfs = Path::new("/sys/kernel/security/lsm").exists();
    let mut out = json!({
        "kernel": release,
        "btf": btf,
        "lockdown": lockdown(),
        "lsm": lsm,
        "bpf_lsm": bpf_lsm,
        "requested_tier": loader::tier_name(tier),
    });
    if !securityfs {
        out["securityfs"] = "not mounted: lockdown and the LSM list are unknown (mount -t securityfs securityfs /sys/kernel/security)".into();
    }
    if !nix::unistd::geteuid().is_root() {
        out["error"] = "not root: hooks were not probed (run: sudo vigil doctor)".into();
        return out;
    }
    if !btf {
        out["error"] = "no BTF (/sys/kernel/btf/vmlinux): Vigil cannot relocate its programs; use a kernel with CONFIG_DEBUG_INFO_BTF=y".into();
        return out;
    }
    if let Err(e) = loader::preflight() {
        out["error"] = format!("{e:#}").into();
        return out;
    }
    let (mut ebpf, btf) = match loader::load_object() {
        Ok(x) => x,
        Err(e) => {
            out["ring_buffer"] = false.into();
            out["error"] = format!("{e:#}").into();
            return out;
        }
    };
    // The object holds a BPF_MAP_TYPE_RINGBUF map: it loaded, so the kernel has them.
    out["ring_buffer"] = true.into();
    let params = loader::param_counts();
    let mut hooks = Vec::new();
    for hook in VFS_HOOKS {
        let mut probe = |t: Tier| {
            let r = loader::try_vfs_hook(&mut ebpf, &btf, hook, t, &params);
            if r.is_ok() {
                // Probing only: drop the hook again.
                let suffix = loader::layout(hook, &params).unwrap_or_default();
                let names: Vec<String> = loader::programs(hook, t, suffix)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                for (name, p) in ebpf.programs_mut() {
                    if names.iter().any(|n| n == name) {
                        let _ = match p {
                            Program::FEntry(p) => p.unload(),
                            Program::FExit(p) => p.unload(),
                            Program::KProbe(p) => p.unload(),
                            _ => Ok(()),
                        };
                    }
                }
            }
            r
        };
        let fentry = probe(Tier::Fentry);
        let kprobe = probe(Tier::Kprobe);
        let chosen = match tier {
            Tier::Auto if fentry.is_ok() => "fentry",
            Tier::Auto if kprobe.is_ok() => "kprobe",
            Tier::Fentry if fentry.is_ok() => "fentry",
            Tier::Kprobe if kprobe.is_ok() => "kprobe",
            _ => "tracepoint",
        };
        hooks.push(HookReport {
            hook,
            fentry,
            kprobe,
            chosen,
        });
    }
    let (tp_ok, tp_failed) = tracepoints(&mut ebpf, &btf, &hooks);
    let mut blind: Vec<String> = hooks
        .iter()
        .filter(|h| h.chosen == "tracepoint")
        .map(|h| h.hook.blind.to_string())
        .collect();
    blind.extend(ALWAYS_BLIND.iter().map(|s| s.to_string()));
    let reason = |r: &std::result::Result<(), String>| match r {
        Ok(()) => Value::from("ok"),
        Err(e) => Value::from(e.clone()),
    };
    out["hooks"] = hooks
        .iter()
        .map(|h| {
            json!({
                "group": h.hook.group,
                "function": h.hook.function,
                "tier": h.chosen,
                "parameters": params.get(h.hook.function),
                "fentry": reason(&h.fentry),
                "kprobe": reason(&h.kprobe),
                "tracepoint_fallback": h.hook.syscalls,
            })
        })
        .collect::<Vec<_>>()
        .into();
    out["tracepoints_attached"] = tp_ok.into();
    out["tracepoints_failed"] = tp_failed.into();
    out["blind_spots"] = blind.into();
    out
}

/// Attaches the tracepoints `vigil run` would (those no chosen VFS hook makes
/// redundant): (how many attached, `name: reason` for each refused).
fn tracepoints(ebpf: &mut aya::Ebpf, btf: &aya::Btf, hooks: &[HookReport]) -> (usize, Vec<String>) {
    let on_vfs = || hooks.iter().filter(|h| h.chosen != "tracepoint");
    let mask = on_vfs().fold(0, |m, h| m | h.hook.mask);
    let skip: Vec<String> = on_vfs()
        .flat_map(|h| h.hook.syscalls.iter())
        .flat_map(|s| [format!("sys_enter_{s}"), format!("sys_exit_{s}")])
        .chain(loader::idle_detectors(mask))
        .chain(loader::unneeded_enters(ebpf))
        .collect();
    let (mut ok, mut failed) = (0, Vec::new());
    for (name, prog) in ebpf.programs_mut() {
        if name == super::loader::NOOP || skip.iter().any(|s| s == name) {
            continue;
        }
        let r = match prog {
            Program::TracePoint(tp) => {
                let category = if name.starts_with("sys_") {
                    "syscalls"
                } else {
                    "sched"
                };
                tp.load().map_err(|e| e.to_string()).and_then(|_| {
                    tp.attach(category, name)
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            }
            Program::BtfTracePoint(tp) => tp
                .load(name, btf)
                .map_err(|e| e.to_string())
                .and_then(|_| tp.attach().map(drop).map_err(|e| e.to_string())),
            _ => continue,
        };
        match r {
            Ok(()) => ok += 1,
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    (ok, failed)
}

fn text(r: &Value) -> String {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "unknown".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    out.push_str(&format!("kernel          {}\n", s(&r["kernel"])));
    out.push_str(&format!("BTF             {}\n", s(&r["btf"])));
    out.push_str(&format!("lockdown        {}\n", s(&r["lockdown"])));
    out.push_str(&format!(
        "BPF-LSM         {} (lsm={})\n",
        s(&r["bpf_lsm"]),
        s(&r["lsm"])
    ));
    if let Some(e) = r["securityfs"].as_str() {
        out.push_str(&format!("securityfs      {e}\n"));
    }
    if let Some(e) = r["error"].as_str() {
        out.push_str(&format!("error           {e}\n"));
        return out;
    }
    out.push_str(&format!("ring buffer     {}\n", s(&r["ring_buffer"])));
    out.push_str(&format!(
        "requested tier  {}\n\nhooks\n",
        s(&r["requested_tier"])
    ));
    for h in r["hooks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<8} {:<15} ({} parameters) -> {}\n      fentry: {}\n      kprobe: {}\n",
            s(&h["group"]),
            s(&h["function"]),
            s(&h["parameters"]),
            s(&h["tier"]),
            s(&h["fentry"]),
            s(&h["kprobe"]),
        ));
    }
    out.push_str(&format!(
        "  syscall and sched tracepoints: {} attached\n",
        s(&r["tracepoints_attached"])
    ));
    for f in r["tracepoints_failed"].as_array().into_iter().flatten() {
        out.push_str(&format!("      refused: {}\n", s(f)));
    }
    out.push_str("\nnot seen with this set (the verification scan is the backstop)\n");
    for b in r["blind_spots"].as_array().into_iter().flatten() {
        out.push_str(&format!("  - {}\n", s(b)));
    }
    out
}
