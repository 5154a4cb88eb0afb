//! Records what the ETW session sees, as NDJSON on stdout, for replay in
//! tests (`sensor_windows::replay`). Windows only; run elevated:
//!
//!   cargo run -p sensor-windows --example etw_record > seq.ndjson
//!
//! then do the thing to record (save in Notepad, `reg add`, `del`...) and
//! stop with Ctrl-C. Every record of the three providers is written, watched
//! or not; parse errors go to stderr.

#[cfg(windows)]
fn main() {
    use sensor_windows::{etw, replay};
    use std::io::Write;

    let (tx, rx) = std::sync::mpsc::sync_channel(65536);
    let session = match etw::start(tx) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("etw_record: {e}");
            std::process::exit(1);
        }
    };
    // Line-buffered: Ctrl-C loses at most the line being written (the next
    // run stops the session it leaves behind).
    let mut out = std::io::stdout().lock();
    for line in replay::volume_lines(&etw::volume_map()) {
        let _ = writeln!(out, "{line}");
    }
    for input in rx {
        match input {
            etw::Input::Record(h, r) => {
                if writeln!(out, "{}", replay::event_line(&h, &r)).is_err() {
                    break;
                }
            }
            etw::Input::Malformed(e) => eprintln!("etw_record: skipped: {e}"),
        }
    }
    session.stop();
}

#[cfg(not(windows))]
fn main() {
    eprintln!("etw_record records Windows ETW sessions: it runs on Windows only");
    std::process::exit(2);
}
