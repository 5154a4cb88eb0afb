//! The Service Control Manager's view of every service's running state
//! (`EnumServicesStatusExW`), for the Windows service events
//! (`inventory::win`). One call lists all services and drivers; `vigil
//! run` polls it every [`crate::inventory::win::SCM_POLL`].
use crate::inventory::win::ScmStatus;
use std::collections::BTreeMap;
use windows_sys::Win32::Foundation::{GetLastError, ERROR_MORE_DATA};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, EnumServicesStatusExW, OpenSCManagerW, ENUM_SERVICE_STATUS_PROCESSW,
    SC_ENUM_PROCESS_INFO, SC_MANAGER_CONNECT, SC_MANAGER_ENUMERATE_SERVICE, SERVICE_DRIVER,
    SERVICE_STATE_ALL, SERVICE_WIN32,
};

/// Every service's and driver's state, by service name; the error names
/// the call that failed and its Win32 error.
pub fn statuses() -> Result<BTreeMap<String, ScmStatus>, String> {
    // SAFETY: plain Win32 calls; the handle is closed below, the buffer
    // outlives every pointer read from it.
    unsafe {
        let scm = OpenSCManagerW(
            std::ptr::null(),
            std::ptr::null(),
            SC_MANAGER_CONNECT | SC_MANAGER_ENUMERATE_SERVICE,
        );
        if scm.is_null() {
            return Err(format!(
                "OpenSCManagerW failed (error {}): service running states are not known",
                GetLastError()
            ));
        }
        let r = enumerate(scm);
        CloseServiceHandle(scm);
        r
    }
}

unsafe fn enumerate(
    scm: windows_sys::Win32::System::Services::SC_HANDLE,
) -> Result<BTreeMap<String, ScmStatus>, String> {
    let mut out = BTreeMap::new();
    let mut resume = 0u32;
    // u64 elements: the records hold pointers, which must be aligned.
    let mut buf = vec![0u64; 8192];
    loop {
        let mut needed = 0u32;
        let mut count = 0u32;
        let ok = EnumServicesStatusExW(
            scm,
            SC_ENUM_PROCESS_INFO,
            SERVICE_WIN32 | SERVICE_DRIVER,
            SERVICE_STATE_ALL,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut needed,
            &mut count,
            &mut resume,
            std::ptr::null(),
        );
        let err = if ok == 0 { GetLastError() } else { 0 };
        if ok == 0 && err != ERROR_MORE_DATA {
            return Err(format!(
                "EnumServicesStatusExW failed (error {err}): service running states are not known"
            ));
        }
        let recs = std::slice::from_raw_parts(
            buf.as_ptr().cast::<ENUM_SERVICE_STATUS_PROCESSW>(),
            count as usize,
        );
        for r in recs {
            let name = wide_str(r.lpServiceName);
            let s = &r.ServiceStatusProcess;
            out.insert(
                name,
                ScmStatus {
                    state: s.dwCurrentState,
                    exit_code: s.dwWin32ExitCode,
                    service_specific: s.dwServiceSpecificExitCode,
                },
            );
        }
        if ok != 0 {
            return Ok(out);
        }
        // More to come (resume handle); grow when not even one fitted.
        if count == 0 {
            buf.resize((needed as usize).div_ceil(8).max(buf.len() * 2), 0);
        }
    }
}

unsafe fn wide_str(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    String::from_utf16_lossy(std::slice::from_raw_parts(p, n))
}

#[cfg(test)]
mod tests {
    /// Under Wine this talks to Wine's services.exe; on Windows to the SCM.
    #[test]
    fn the_scm_lists_services_with_known_states() {
        let all = super::statuses().unwrap();
        assert!(!all.is_empty(), "no service listed");
        for (name, s) in &all {
            assert!(!name.is_empty());
            assert!((1..=7).contains(&s.state), "{name}: state {}", s.state);
        }
    }
}
