//! `vigil hash` (the built binary) against the reference implementations: its
//! BLAKE3 column equals `blake3::hash` of the file's bytes and its SHA-256
//! column `sha2::Sha256`, for small (read) and large (memory-mapped) files.
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vigil_hash(args: &[&str], files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("hash")
        .args(args)
        .args(files)
        .output()
        .expect("running vigil hash")
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Files of sizes on both sides of the memory-mapping threshold (1 MiB) and of
/// BLAKE3's chunk (1 KiB) and SIMD-batch boundaries.
fn sample_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    [
        0usize,
        1,
        1023,
        1024,
        1025,
        65536,
        (1 << 20) - 1,
        1 << 20,
        (3 << 20) + 12345,
    ]
    .into_iter()
    .map(|size| {
        let mut x = size as u64 ^ 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let path = dir.join(format!("f{size}"));
        std::fs::write(&path, &data).unwrap();
        (path, data)
    })
    .collect()
}

#[test]
fn blake3_lines_equal_blake3_hash_of_the_contents() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample_files(dir.path());
    let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let out = vigil_hash(&[], &paths);
    assert!(out.status.success(), "{out:?}");
    let expected: String = files
        .iter()
        .map(|(p, data)| format!("{}  {}\n", blake3::hash(data).to_hex(), p.display()))
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn sha256_adds_a_second_column() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample_files(dir.path());
    let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let out = vigil_hash(&["--sha256"], &paths);
    assert!(out.status.success(), "{out:?}");
    let expected: String = files
        .iter()
        .map(|(p, data)| {
            format!(
                "{}  {}  {}\n",
                blake3::hash(data).to_hex(),
                sha256_hex(data),
                p.display()
            )
        })
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn errors_name_the_file_and_the_others_are_still_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(&good, b"hello\n").unwrap();
    let missing = dir.path().join("missing");
    let out = vigil_hash(&[], &[&missing, dir.path(), &good]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{}  {}\n",
            blake3::hash(b"hello\n").to_hex(),
            good.display()
        )
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}: ", missing.display())), "{err}");
    assert!(
        err.contains(&format!("{}: not a regular file", dir.path().display())),
        "{err}"
    );
}

#[test]
fn names_with_newlines_or_backslashes_are_escaped_as_b3sum_does() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a\\b\nc");
    std::fs::write(&odd, b"x").unwrap();
    let out = vigil_hash(&[], &[&odd]);
    assert!(out.status.success(), "{out:?}");
    let name = odd
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('\n', "\\n");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("\\{}  {name}\n", blake3::hash(b"x").to_hex())
    );
}
