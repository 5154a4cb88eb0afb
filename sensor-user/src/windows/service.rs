//! `vigil service install|uninstall|start|stop`: the Windows service
//! (service control manager, through the windows-service crate).
//!
//! The service runs `vigil.exe service run [RUN-ARGS]` as LocalSystem, auto
//! start; `service run` connects to the SCM's dispatcher and runs what
//! `vigil run` runs until the SCM says stop (or the system shuts down).
use anyhow::{anyhow, Context, Result};
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

/// The service's name (`sc query Vigil`).
pub const NAME: &str = "Vigil";
const DISPLAY_NAME: &str = "Vigil file-integrity monitoring";
const DESCRIPTION: &str =
    "Reports changes to watched files and registry keys (ETW), with a baseline and scans.";

/// What the service runs: `vigil run`'s body, given the stop flag.
type Body = Box<dyn FnOnce(Arc<AtomicBool>) -> Result<()> + Send>;

static BODY: Mutex<Option<Body>> = Mutex::new(None);

windows_service::define_windows_service!(ffi_service_main, service_main);

/// The crate's error with the OS error it wraps: its own text for a failed
/// call is only "IO error in winapi call".
fn why(e: windows_service::Error) -> String {
    match e {
        windows_service::Error::Winapi(io) => io.to_string(),
        e => e.to_string(),
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access).map_err(|e| {
        anyhow!(
            "cannot open the service control manager: {} (run elevated: an Administrator console)",
            why(e)
        )
    })
}

/// Registers the service: `vigil.exe service run` with `run_args` (the
/// `vigil run` options, e.g. `--config C:\ProgramData\Vigil\policy.toml`).
pub fn install(run_args: &[OsString]) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find vigil.exe's own path")?;
    let m = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let mut launch: Vec<OsString> = vec!["service".into(), "run".into()];
    launch.extend(run_args.iter().cloned());
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: launch,
        dependencies: Vec::new(),
        // LocalSystem: ETW kernel providers need it (or SeSystemProfilePrivilege).
        account_name: None,
        account_password: None,
    };
    let s = m
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .map_err(|e| anyhow!("cannot create service {NAME}: {} (already installed? `vigil service uninstall` first)", why(e)))?;
    s.set_description(DESCRIPTION)
        .map_err(|e| anyhow!("service {NAME}: cannot set its description: {}", why(e)))?;
    eprintln!(
        "vigil: service {NAME} installed ({} service run{}), automatic start; `vigil service start` starts it now",
        exe.display(),
        run_args
            .iter()
            .map(|a| format!(" {}", a.to_string_lossy()))
            .collect::<String>()
    );
    Ok(())
}

/// Stops the service if it runs, then deletes it.
pub fn uninstall() -> Result<()> {
    let m = manager(ServiceManagerAccess::CONNECT)?;
    let s = m
        .open_service(
            NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|e| anyhow!("cannot open service {NAME}: {} (is it installed?)", why(e)))?;
    if !matches!(
        s.query_status().map(|st| st.current_state),
        Ok(ServiceState::Stopped)
    ) {
        let _ = s.stop();
    }
    s.delete()
        .map_err(|e| anyhow!("cannot delete service {NAME}: {}", why(e)))?;
    eprintln!("vigil: service {NAME} uninstalled");
    Ok(())
}

pub fn start() -> Result<()> {
    let m = manager(ServiceManagerAccess::CONNECT)?;
    let s = m
        .open_service(NAME, ServiceAccess::START)
        .map_err(|e| anyhow!("cannot open service {NAME}: {} (is it installed?)", why(e)))?;
    s.start::<&str>(&[])
        .map_err(|e| anyhow!("cannot start service {NAME}: {} (its reason is in the event log, System, source Service Control Manager)", why(e)))?;
    eprintln!("vigil: service {NAME} starting");
    Ok(())
}

pub fn stop() -> Result<()> {
    let m = manager(ServiceManagerAccess::CONNECT)?;
    let s = m
        .open_service(NAME, ServiceAccess::STOP)
        .map_err(|e| anyhow!("cannot open service {NAME}: {} (is it installed?)", why(e)))?;
    s.stop()
        .map_err(|e| anyhow!("cannot stop service {NAME}: {}", why(e)))?;
    eprintln!("vigil: service {NAME} stopping");
    Ok(())
}

/// `vigil service run`: hands the process to the SCM's dispatcher, which
/// calls the service main; returns when the service has stopped. Outside
/// the SCM (from a console) this fails at once.
pub fn dispatch(body: Body) -> Result<()> {
    *BODY.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
    windows_service::service_dispatcher::start(NAME, ffi_service_main).map_err(|e| {
        anyhow!("service dispatcher: {} (`vigil service run` is what the service control manager starts; from a console use `vigil run`)", why(e))
    })
}

fn service_main(_args: Vec<OsString>) {
    if let Err(e) = run_service() {
        tracing::error!("service {NAME}: {e:#}");
        eprintln!("vigil: service {NAME}: {e:#}");
    }
}

fn run_service() -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handler = move |c| match c {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            flag.store(true, Ordering::Relaxed);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = service_control_handler::register(NAME, handler)?;
    let set = |state, accept, code, wait| {
        status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: wait,
            process_id: None,
        })
    };
    set(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
        Duration::default(),
    )?;
    let body = BODY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| anyhow!("no service body"))?;
    let r = body(stop);
    // ERROR_SERVICE_SPECIFIC_ERROR-like: 1 tells the SCM the run failed.
    set(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        u32::from(r.is_err()),
        Duration::default(),
    )?;
    r
}
