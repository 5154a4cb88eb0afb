//! The overhead benchmark's workload: N × (create + write 4 KiB + close +
//! rename + unlink) in a directory, one process. Prints the wall time in ns.
//!
//! Usage: vigil-churn DIR N
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("N");
    let block = [0x5au8; 4096];
    let (a, b) = (dir.join("churn.tmp"), dir.join("churn.dat"));
    let start = Instant::now();
    for _ in 0..n {
        let mut f = std::fs::File::create(&a).expect("create");
        std::io::Write::write_all(&mut f, &block).expect("write");
        drop(f);
        std::fs::rename(&a, &b).expect("rename");
        std::fs::remove_file(&b).expect("unlink");
    }
    println!("{}", start.elapsed().as_nanos());
}
