//! Just enough of a BTF reader to count a kernel function's parameters, which
//! is how the loader picks a VFS program's argument layout. Kernel versions do
//! not tell: Debian's 5.10 has the 5.12 `vfs_rename(struct renamedata *)`
//! (backported) but the old `vfs_unlink` and `notify_change`.
//!
//! Format: include/uapi/linux/btf.h (a header, then the type section, then the
//! string section; type ids count from 1 in section order).
use std::collections::HashMap;

const MAGIC: u16 = 0xeb9f;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

/// Bytes following the 12-byte common header of a type of `kind` with `vlen`.
fn extra(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 => 4,             // INT
        2 => 0,             // PTR
        3 => 12,            // ARRAY
        4 | 5 => 12 * vlen, // STRUCT, UNION
        6 => 8 * vlen,      // ENUM
        7..=12 => 0,        // FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC
        13 => 8 * vlen,     // FUNC_PROTO
        14 => 4,            // VAR
        15 => 12 * vlen,    // DATASEC
        16 => 0,            // FLOAT
        17 => 4,            // DECL_TAG
        18 => 0,            // TYPE_TAG
        19 => 12 * vlen,    // ENUM64
        _ => return None,
    })
}

/// The number of parameters of each function in `names` that the BTF blob
/// describes (absent: not in BTF, e.g. inlined or static and renamed).
pub fn param_counts(data: &[u8], names: &[&str]) -> Result<HashMap<String, usize>, String> {
    let u32_at = |off: usize| -> Option<u32> {
        data.get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let magic = data
        .get(0..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or("BTF is empty")?;
    if magic != MAGIC {
        return Err(format!("not little-endian BTF (magic {magic:#x})"));
    }
    let hdr_len = u32_at(4).ok_or("BTF header cut short")? as usize;
    let type_off = u32_at(8).ok_or("BTF header cut short")? as usize;
    let type_len = u32_at(12).ok_or("BTF header cut short")? as usize;
    let str_off = u32_at(16).ok_or("BTF header cut short")? as usize;
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let name = |off: u32| -> &[u8] {
        let start = strings + off as usize;
        let rest = data.get(start..).unwrap_or(&[]);
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        &rest[..end]
    };
    // id -> vlen of FUNC_PROTOs, and the FUNCs we want -> their proto id.
    let mut protos: HashMap<u32, usize> = HashMap::new();
    let mut funcs: Vec<(String, u32)> = Vec::new();
    let mut off = types;
    let mut id: u32 = 1;
    while off + 12 <= types + type_len {
        let name_off = u32_at(off).ok_or("BTF type cut short")?;
        let info = u32_at(off + 4).ok_or("BTF type cut short")?;
        let size_or_type = u32_at(off + 8).ok_or("BTF type cut short")?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        match kind {
            KIND_FUNC_PROTO => {
                protos.insert(id, vlen);
            }
            KIND_FUNC => {
                let n = name(name_off);
                if let Some(want) = names.iter().find(|w| w.as_bytes() == n) {
                    funcs.push((want.to_string(), size_or_type));
                }
            }
            _ => {}
        }
        off += 12 + extra(kind, vlen).ok_or(format!("unknown BTF kind {kind} (type {id})"))?;
        id += 1;
    }
    Ok(funcs
        .into_iter()
        .filter_map(|(n, proto)| protos.get(&proto).map(|v| (n, *v)))
        .collect())
}

/// [`param_counts`] of the running kernel (/sys/kernel/btf/vmlinux).
pub fn kernel_param_counts(names: &[&str]) -> Result<HashMap<String, usize>, String> {
    let data = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|e| format!("reading /sys/kernel/btf/vmlinux: {e}"))?;
    param_counts(&data, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with: 1 INT, 2 FUNC_PROTO(2 params), 3 FUNC "f" -> 2,
    /// 4 STRUCT(1 member), 5 FUNC_PROTO(1 param), 6 FUNC "g" -> 5.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0f\0g\0s\0m\0".to_vec();
        let mut t: Vec<u8> = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, st: u32, extra: &[u32]| {
            for v in [name, (kind << 24) | vlen, st] {
                t.extend_from_slice(&v.to_le_bytes());
            }
            for v in extra {
                t.extend_from_slice(&v.to_le_bytes());
            }
        };
        ty(1, 1, 0, 4, &[32]);
        ty(0, 13, 2, 1, &[0, 1, 0, 1]);
        ty(5, 12, 0, 2, &[]);
        ty(9, 4, 1, 4, &[11, 1, 0]);
        ty(0, 13, 1, 1, &[0, 4]);
        ty(7, 12, 0, 5, &[]);
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn counts_parameters_of_named_functions() {
        let c = param_counts(&blob(), &["f", "g", "h"]).unwrap();
        assert_eq!(c.get("f"), Some(&2));
        assert_eq!(c.get("g"), Some(&1));
        assert_eq!(c.get("h"), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(param_counts(b"\x00\x00", &["f"]).is_err());
    }

    #[test]
    fn reads_this_kernel() {
        if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            let c = kernel_param_counts(&["vfs_unlink"]).unwrap();
            assert!(matches!(c.get("vfs_unlink"), Some(3 | 4)), "{c:?}");
        }
    }
}
