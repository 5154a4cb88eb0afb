//! systemd's readiness and watchdog protocol (`sd_notify(3)`), without
//! libsystemd: one datagram per notification to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Outside
//! systemd (no `$NOTIFY_SOCKET`) every call does nothing.
use std::time::Duration;

/// Sends `state` (e.g. `READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=...`).
/// Returns whether it was sent; failures are logged, never fatal.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let r = (|| -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let sock = UnixDatagram::unbound()?;
        let bytes = path.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(&path)?,
        };
        sock.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = &r {
        tracing::warn!("sd_notify {state:?} to {path:?}: {e}");
    }
    r.is_ok()
}

/// How often systemd expects `WATCHDOG=1` (`WatchdogSec=`), if it does: half
/// of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises. `$WATCHDOG_PID`,
/// when set, must be this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
