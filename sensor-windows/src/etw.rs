//! The live source (Windows only): a real-time ETW session on
//! Microsoft-Windows-Kernel-File, -Kernel-Registry and -Kernel-Process through
//! ferrisetw, its records parsed into [`Record`]s for the [`Interpreter`].
//!
//! Needs an elevated process (Administrators, or SeSystemProfilePrivilege) to
//! enable kernel providers. ETW calls the provider callbacks on one processing
//! thread; records go to the consumer through a bounded channel, so a slow
//! consumer makes ETW drop buffers, which the session's own counters report
//! and [`Record::Lost`] turns into a gap, never into silent loss.
//!
//! Not run on a real Windows host yet: it type-checks against the Windows
//! target (see docs/windows.md for what was and was not verified).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use ferrisetw::parser::{Parser, Pointer};
use ferrisetw::provider::{EventFilter, Provider, TraceFlags};
use ferrisetw::trace::{stop_trace_by_name, TraceProperties, UserTrace};
use ferrisetw::{EventRecord, SchemaLocator};

use crate::interpreter::{Change, Interpreter};
use crate::paths::VolumeMap;
use crate::records::{ids, providers, FileIo, Header, PathOp, Record, SetInfoOp};

/// The ETW session's name (one per host; a stale one is stopped at start).
pub const SESSION_NAME: &str = "Vigil-FIM";

/// What the session hands the consumer.
#[derive(Debug)]
pub enum Input {
    Record(Header, Record),
    /// A record that could not be parsed: counted and skipped.
    Malformed(ParseError),
}

/// A record missing a field or carrying one of the wrong type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider} event {event_id} v{version}: field {field}: {message}")]
pub struct ParseError {
    pub provider: &'static str,
    pub event_id: u16,
    pub version: u8,
    pub field: &'static str,
    pub message: String,
}

/// Why the session could not start.
#[derive(Debug, thiserror::Error)]
pub enum EtwError {
    #[error("cannot start the ETW session {SESSION_NAME} (run elevated: kernel providers need administrator rights or SeSystemProfilePrivilege): {0:?}")]
    Start(ferrisetw::trace::TraceError),
    #[error("cannot start the ETW loss poller: {0}")]
    Thread(std::io::Error),
}

/// A running session; dropping it stops the trace.
pub struct Session {
    trace: Option<UserTrace>,
    stop: Arc<AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
}

impl Session {
    /// Stops the trace and the loss poller.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.trace.take() {
            let _ = t.stop();
        }
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Kernel-File events the interpreter uses; the rest of the FILEIO keyword
/// (directory enumeration, flush, queries, FSCTL) is filtered in the session.
const FILE_EVENTS: &[u16] = &[
    ids::file::NAME_CREATE,
    ids::file::NAME_DELETE,
    ids::file::CREATE,
    ids::file::CLEANUP,
    ids::file::CLOSE,
    ids::file::WRITE,
    ids::file::SET_INFORMATION,
    ids::file::SET_DELETE,
    ids::file::RENAME,
    ids::file::DELETE_PATH,
    ids::file::RENAME_PATH,
    ids::file::SET_LINK_PATH,
    ids::file::RENAME_29,
    ids::file::CREATE_NEW_FILE,
    ids::file::SET_SECURITY,
];

/// Starts the session; records arrive on `tx` (bounded: when it is full the
/// ETW thread waits and ETW counts what it drops).
pub fn start(tx: SyncSender<Input>) -> Result<Session, EtwError> {
    // A session left by a crashed run would make the name unavailable.
    let _ = stop_trace_by_name(SESSION_NAME);
    let cb = |provider: &'static str,
              parse: fn(&EventRecord, &Parser) -> Result<Option<Record>, ParseError>| {
        let tx = tx.clone();
        move |record: &EventRecord, locator: &SchemaLocator| {
            let input = match locator.event_schema(record) {
                Ok(schema) => {
                    let parser = Parser::create(record, &schema);
                    match parse(record, &parser) {
                        Ok(Some(rec)) => Input::Record(header(record), rec),
                        Ok(None) => return,
                        Err(e) => Input::Malformed(e),
                    }
                }
                Err(e) => Input::Malformed(ParseError {
                    provider,
                    event_id: record.event_id(),
                    version: record.version(),
                    field: "(schema)",
                    message: format!("{e:?}"),
                }),
            };
            let _ = tx.send(input);
        }
    };
    // SID extended data on every record: the token user of the thread that
    // made the change (the creator's user, for ProcessStart).
    let file = Provider::by_guid(providers::KERNEL_FILE)
        .any(providers::FILE_KEYWORDS)
        .level(4)
        .trace_flags(TraceFlags::EVENT_ENABLE_PROPERTY_SID)
        .add_filter(EventFilter::ByEventIds(FILE_EVENTS.to_vec()))
        .add_callback(cb("Kernel-File", parse_file))
        .build();
    let registry = Provider::by_guid(providers::KERNEL_REGISTRY)
        .any(providers::REGISTRY_KEYWORDS)
        .level(4)
        .trace_flags(TraceFlags::EVENT_ENABLE_PROPERTY_SID)
        .add_callback(cb("Kernel-Registry", parse_registry))
        .build();
    let process = Provider::by_guid(providers::KERNEL_PROCESS)
        .any(providers::PROCESS_KEYWORDS)
        .level(4)
        .trace_flags(TraceFlags::EVENT_ENABLE_PROPERTY_SID)
        .add_callback(cb("Kernel-Process", parse_process))
        .build();
    let props = TraceProperties {
        buffer_size: 256,
        min_buffer: 64,
        max_buffer: 256,
        ..TraceProperties::default()
    };
    let trace = UserTrace::new()
        .named(SESSION_NAME.to_string())
        .set_trace_properties(props)
        .enable(file)
        .enable(registry)
        .enable(process)
        .start_and_process()
        .map_err(EtwError::Start)?;
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("vigil-etw-loss".into())
            .spawn(move || poll_losses(&tx, &stop))
            .map_err(EtwError::Thread)?
    };
    Ok(Session {
        trace: Some(trace),
        stop,
        poller: Some(poller),
    })
}

/// Feeds the interpreter until the channel closes; `emit` gets each change.
pub fn run(interp: &mut Interpreter, rx: &Receiver<Input>, mut emit: impl FnMut(Change)) {
    for input in rx {
        match input {
            Input::Record(h, rec) => interp.push(&h, rec).into_iter().for_each(&mut emit),
            Input::Malformed(_) => interp.count_malformed(),
        }
    }
}

fn header(record: &EventRecord) -> Header {
    Header {
        timestamp: record.raw_timestamp() as u64,
        pid: record.process_id(),
        tid: record.thread_id(),
        user_sid: record_sid(record),
    }
}

/// Typed field access that names the field in its error.
struct Fields<'p, 'a, 'b> {
    p: &'p Parser<'a, 'b>,
    provider: &'static str,
    event_id: u16,
    version: u8,
}

impl Fields<'_, '_, '_> {
    fn err(&self, field: &'static str, e: impl std::fmt::Debug) -> ParseError {
        ParseError {
            provider: self.provider,
            event_id: self.event_id,
            version: self.version,
            field,
            message: format!("{e:?}"),
        }
    }
    fn ptr(&self, f: &'static str) -> Result<u64, ParseError> {
        self.p
            .try_parse::<Pointer>(f)
            .map(|p| *p as u64)
            .map_err(|e| self.err(f, e))
    }
    fn u32(&self, f: &'static str) -> Result<u32, ParseError> {
        self.p.try_parse::<u32>(f).map_err(|e| self.err(f, e))
    }
    fn u64(&self, f: &'static str) -> Result<u64, ParseError> {
        self.p.try_parse::<u64>(f).map_err(|e| self.err(f, e))
    }
    fn string(&self, f: &'static str) -> Result<String, ParseError> {
        self.p.try_parse::<String>(f).map_err(|e| self.err(f, e))
    }
    /// Fields that only newer manifest versions have.
    fn opt_u32(&self, f: &'static str) -> Option<u32> {
        self.p.try_parse::<u32>(f).ok()
    }
    fn opt_bytes(&self, f: &'static str) -> Option<Vec<u8>> {
        self.p.try_parse::<Vec<u8>>(f).ok()
    }
    fn file_io(&self) -> Result<FileIo, ParseError> {
        Ok(FileIo {
            irp: self.ptr("Irp")?,
            file_object: self.ptr("FileObject")?,
            file_key: self.ptr("FileKey")?,
            issuing_thread_id: self.opt_u32("IssuingThreadId").unwrap_or(0),
        })
    }
}

fn fields<'p, 'a, 'b>(
    provider: &'static str,
    r: &EventRecord,
    p: &'p Parser<'a, 'b>,
) -> Fields<'p, 'a, 'b> {
    Fields {
        p,
        provider,
        event_id: r.event_id(),
        version: r.version(),
    }
}

fn parse_file(r: &EventRecord, p: &Parser) -> Result<Option<Record>, ParseError> {
    use ids::file::*;
    let f = fields("Kernel-File", r, p);
    let set_info = |op| -> Result<Option<Record>, ParseError> {
        Ok(Some(Record::FileSetInfo {
            op,
            io: f.file_io()?,
            extra_information: f.ptr("ExtraInformation")?,
            info_class: f.u32("InfoClass")?,
        }))
    };
    let path_op = |op| -> Result<Option<Record>, ParseError> {
        Ok(Some(Record::FilePathOp {
            op,
            io: f.file_io()?,
            extra_information: f.ptr("ExtraInformation")?,
            info_class: f.u32("InfoClass")?,
            file_path: f.string("FilePath")?,
        }))
    };
    Ok(match r.event_id() {
        NAME_CREATE => Some(Record::FileNameCreate {
            file_key: f.ptr("FileKey")?,
            file_name: f.string("FileName")?,
        }),
        NAME_DELETE => Some(Record::FileNameDelete {
            file_key: f.ptr("FileKey")?,
            file_name: f.string("FileName")?,
        }),
        CREATE | CREATE_NEW_FILE => Some(Record::FileCreate {
            irp: f.ptr("Irp")?,
            file_object: f.ptr("FileObject")?,
            issuing_thread_id: f.opt_u32("IssuingThreadId").unwrap_or(0),
            create_options: f.u32("CreateOptions")?,
            create_attributes: f.u32("CreateAttributes")?,
            share_access: f.u32("ShareAccess")?,
            file_name: f.string("FileName")?,
            new_file: r.event_id() == CREATE_NEW_FILE,
        }),
        CLEANUP => Some(Record::FileCleanup(f.file_io()?)),
        CLOSE => Some(Record::FileClose(f.file_io()?)),
        WRITE => Some(Record::FileWrite {
            io: f.file_io()?,
            byte_offset: f.u64("ByteOffset")?,
            io_size: f.u32("IOSize")?,
        }),
        SET_INFORMATION => set_info(SetInfoOp::SetInformation)?,
        SET_DELETE => set_info(SetInfoOp::SetDelete)?,
        RENAME | RENAME_29 => set_info(SetInfoOp::Rename)?,
        SET_SECURITY => set_info(SetInfoOp::SetSecurity)?,
        DELETE_PATH => path_op(PathOp::DeletePath)?,
        RENAME_PATH => path_op(PathOp::RenamePath)?,
        SET_LINK_PATH => path_op(PathOp::SetLinkPath)?,
        _ => None,
    })
}

fn parse_registry(r: &EventRecord, p: &Parser) -> Result<Option<Record>, ParseError> {
    use ids::registry::*;
    let f = fields("Kernel-Registry", r, p);
    Ok(match r.event_id() {
        CREATE_KEY | OPEN_KEY => Some(Record::RegOpenKey {
            base_object: f.ptr("BaseObject")?,
            key_object: f.ptr("KeyObject")?,
            status: f.u32("Status")?,
            disposition: f.opt_u32("Disposition").unwrap_or(0),
            base_name: f.string("BaseName")?,
            relative_name: f.string("RelativeName")?,
            create: r.event_id() == CREATE_KEY,
        }),
        DELETE_KEY => Some(Record::RegDeleteKey {
            key_object: f.ptr("KeyObject")?,
            status: f.u32("Status")?,
            key_name: f.string("KeyName")?,
        }),
        SET_VALUE_KEY => Some(Record::RegSetValue {
            key_object: f.ptr("KeyObject")?,
            status: f.u32("Status")?,
            value_type: f.u32("Type")?,
            data_size: f.u32("DataSize")?,
            key_name: f.string("KeyName")?,
            value_name: f.string("ValueName")?,
            captured_data: f.opt_bytes("CapturedData"),
            previous_data_type: f.opt_u32("PreviousDataType"),
            previous_data_size: f.opt_u32("PreviousDataSize"),
            previous_data: f.opt_bytes("PreviousData"),
        }),
        DELETE_VALUE_KEY => Some(Record::RegDeleteValue {
            key_object: f.ptr("KeyObject")?,
            status: f.u32("Status")?,
            key_name: f.string("KeyName")?,
            value_name: f.string("ValueName")?,
        }),
        SET_SECURITY_KEY => Some(Record::RegSetSecurity {
            key_object: f.ptr("KeyObject")?,
            status: f.u32("Status")?,
            key_name: f.string("KeyName")?,
        }),
        CLOSE_KEY => Some(Record::RegCloseKey {
            key_object: f.ptr("KeyObject")?,
            key_name: f.string("KeyName").unwrap_or_default(),
        }),
        _ => None,
    })
}

fn parse_process(r: &EventRecord, p: &Parser) -> Result<Option<Record>, ParseError> {
    use ids::process::*;
    let f = fields("Kernel-Process", r, p);
    Ok(match r.event_id() {
        PROCESS_START => {
            let pid = f.u32("ProcessID")?;
            Some(Record::ProcessStart {
                process_id: pid,
                parent_process_id: f.u32("ParentProcessID")?,
                create_time: r.raw_timestamp() as u64,
                session_id: f.opt_u32("SessionID").unwrap_or(0),
                image_name: f.string("ImageName")?,
                command_line: win::command_line(pid),
                // The new process's own token; the record's SID is its creator's.
                user_sid: win::process_user(pid).or_else(|| record_sid(r)),
            })
        }
        PROCESS_STOP => Some(Record::ProcessStop {
            process_id: f.u32("ProcessID")?,
            image_name: f.string("ImageName").unwrap_or_default(),
            exit_code: f.opt_u32("ExitCode").unwrap_or(0),
        }),
        _ => None,
    })
}

/// The SID extended data item (EVENT_ENABLE_PROPERTY_SID) as `S-1-...`.
///
/// Read from the raw item: ferrisetw's `ExtendedDataItem::Sid` copies a
/// fixed-size SID and so keeps only the first sub-authority.
fn record_sid(r: &EventRecord) -> Option<String> {
    use windows_sys::Win32::System::Diagnostics::Etw::{
        EVENT_HEADER_EXTENDED_DATA_ITEM, EVENT_HEADER_EXT_TYPE_SID,
    };
    let item = r
        .extended_data()
        .iter()
        .find(|i| u32::from(i.data_type()) == EVENT_HEADER_EXT_TYPE_SID)?;
    // Safety: EventHeaderExtendedDataItem is #[repr(transparent)] over
    // EVENT_HEADER_EXTENDED_DATA_ITEM (the same layout in windows-sys), and
    // lives as long as the record.
    let item: *const _ = item;
    let raw = unsafe { &*item.cast::<EVENT_HEADER_EXTENDED_DATA_ITEM>() };
    win::sid_string(raw.DataPtr as *mut core::ffi::c_void)
}

/// Sends the processes already running, then polls the session's loss
/// counters every second; differences become [`Record::Lost`].
fn poll_losses(tx: &SyncSender<Input>, stop: &AtomicBool) {
    // Processes started before the session: one snapshot, sent from here
    // because the consumer may start reading only after `start` returns.
    let h = Header {
        timestamp: win::now_filetime(),
        ..Header::default()
    };
    for rec in win::process_snapshot() {
        if tx.send(Input::Record(h.clone(), rec)).is_err() {
            return;
        }
    }
    let (mut events, mut buffers) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let Some((e, b)) = win::session_losses(SESSION_NAME) else {
            continue;
        };
        if e > events || b > buffers {
            let rec = Record::Lost {
                events: e.saturating_sub(events),
                buffers: b.saturating_sub(buffers),
            };
            (events, buffers) = (e, b);
            let h = Header {
                timestamp: win::now_filetime(),
                ..Header::default()
            };
            if tx.send(Input::Record(h, rec)).is_err() {
                return;
            }
        }
    }
}

/// `\Device\HarddiskVolumeN` → drive letter, for every mounted drive letter.
pub fn volume_map() -> VolumeMap {
    win::volume_map()
}

/// The Win32 calls, unsafe kept in one place.
mod win {
    use crate::paths::VolumeMap;
    use crate::records::Record;
    use windows_sys::Wdk::System::Threading::{
        NtQueryInformationProcess, ProcessCommandLineInformation,
    };
    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, UNICODE_STRING};
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER};
    use windows_sys::Win32::Storage::FileSystem::{GetLogicalDrives, QueryDosDeviceW};
    use windows_sys::Win32::System::Diagnostics::Etw::{
        ControlTraceW, CONTROLTRACE_HANDLE, EVENT_TRACE_CONTROL_QUERY, EVENT_TRACE_PROPERTIES,
    };
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W,
        TH32CS_SNAPPROCESS,
    };
    use windows_sys::Win32::System::SystemInformation::GetSystemTimeAsFileTime;
    use windows_sys::Win32::System::Threading::{
        OpenProcess, OpenProcessToken, QueryFullProcessImageNameW, PROCESS_NAME_WIN32,
        PROCESS_QUERY_LIMITED_INFORMATION,
    };

    /// A handle closed on drop.
    struct Handle(HANDLE);

    impl Drop for Handle {
        fn drop(&mut self) {
            // Safety: a valid handle from an Open* call, closed once.
            unsafe { CloseHandle(self.0) };
        }
    }

    fn open_process(pid: u32) -> Option<Handle> {
        // Safety: OpenProcess has no pointer arguments; null means failure.
        let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        (!h.is_null()).then_some(Handle(h))
    }

    /// The user SID of a live process's primary token.
    pub fn process_user(pid: u32) -> Option<String> {
        let p = open_process(pid)?;
        let mut token: HANDLE = std::ptr::null_mut();
        // Safety: token receives a handle, wrapped at once; the buffer is
        // 8-byte aligned and sized by the first call; TOKEN_USER points into it.
        unsafe {
            if OpenProcessToken(p.0, TOKEN_QUERY, &mut token) == 0 {
                return None;
            }
            let token = Handle(token);
            let mut len = 0u32;
            GetTokenInformation(token.0, TokenUser, std::ptr::null_mut(), 0, &mut len);
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
            if GetTokenInformation(
                token.0,
                TokenUser,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut len,
            ) == 0
            {
                return None;
            }
            let user = &*(buf.as_ptr() as *const TOKEN_USER);
            sid_string(user.User.Sid)
        }
    }

    /// A live process's image path (DOS form).
    fn image(pid: u32) -> Option<String> {
        let p = open_process(pid)?;
        let mut buf = vec![0u16; 32768];
        let mut len = buf.len() as u32;
        // Safety: buf holds len UTF-16 units; len receives the length written.
        let ok = unsafe {
            QueryFullProcessImageNameW(p.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len)
        };
        (ok != 0).then(|| String::from_utf16_lossy(&buf[..len as usize]))
    }

    /// The processes running now, as ProcessStart records.
    pub fn process_snapshot() -> Vec<Record> {
        let mut out = Vec::new();
        // Safety: the snapshot handle is checked and closed; the entry's
        // dwSize is set as the API requires.
        unsafe {
            let snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
            if snap.is_null() || snap as isize == -1 {
                return out;
            }
            let snap = Handle(snap);
            let mut e: PROCESSENTRY32W = std::mem::zeroed();
            e.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
            let mut more = Process32FirstW(snap.0, &mut e) != 0;
            while more {
                let pid = e.th32ProcessID;
                let end = e
                    .szExeFile
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(e.szExeFile.len());
                let exe = String::from_utf16_lossy(&e.szExeFile[..end]);
                out.push(Record::ProcessStart {
                    process_id: pid,
                    parent_process_id: e.th32ParentProcessID,
                    create_time: 0,
                    session_id: 0,
                    image_name: image(pid).unwrap_or(exe),
                    command_line: command_line(pid),
                    user_sid: process_user(pid),
                });
                more = Process32NextW(snap.0, &mut e) != 0;
            }
        }
        out
    }

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(Some(0)).collect()
    }

    /// A NUL-terminated UTF-16 string at `p`.
    ///
    /// Safety: `p` is null or points to a NUL-terminated UTF-16 string.
    unsafe fn from_wide(p: *const u16) -> Option<String> {
        if p.is_null() {
            return None;
        }
        let mut n = 0;
        while *p.add(n) != 0 {
            n += 1;
        }
        Some(String::from_utf16_lossy(std::slice::from_raw_parts(p, n)))
    }

    pub fn sid_string(sid: *mut core::ffi::c_void) -> Option<String> {
        if sid.is_null() {
            return None;
        }
        let mut out: *mut u16 = std::ptr::null_mut();
        // Safety: sid points to a SID from an ETW extended data item; out is
        // freed with LocalFree as the API requires.
        unsafe {
            if ConvertSidToStringSidW(sid, &mut out) == 0 {
                return None;
            }
            let s = from_wide(out);
            LocalFree(out as _);
            s
        }
    }

    /// The command line of a live process (best effort: None when the
    /// process is gone or protected).
    pub fn command_line(pid: u32) -> Option<String> {
        // Safety: the handle is checked and closed; the buffer is sized by
        // the first call and holds a UNICODE_STRING followed by its text.
        unsafe {
            let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if h.is_null() {
                return None;
            }
            let mut len = 0u32;
            NtQueryInformationProcess(
                h,
                ProcessCommandLineInformation,
                std::ptr::null_mut(),
                0,
                &mut len,
            );
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(2)];
            let status = NtQueryInformationProcess(
                h,
                ProcessCommandLineInformation,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut len,
            );
            CloseHandle(h);
            if status < 0 {
                return None;
            }
            let us = &*(buf.as_ptr() as *const UNICODE_STRING);
            if us.Buffer.is_null() {
                return None;
            }
            let text = std::slice::from_raw_parts(us.Buffer, usize::from(us.Length) / 2);
            Some(String::from_utf16_lossy(text))
        }
    }

    /// (EventsLost, RealTimeBuffersLost + LogBuffersLost) of a session.
    pub fn session_losses(name: &str) -> Option<(u64, u64)> {
        const NAME_BYTES: usize = 1024 * 2;
        let size = std::mem::size_of::<EVENT_TRACE_PROPERTIES>() + NAME_BYTES;
        let mut buf = vec![0u64; size.div_ceil(8)];
        let name = wide(name);
        // Safety: the buffer is zeroed, 8-byte aligned and as large as
        // Wnode.BufferSize says; ControlTraceW writes within it.
        unsafe {
            let props = buf.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES;
            (*props).Wnode.BufferSize = size as u32;
            (*props).LoggerNameOffset = std::mem::size_of::<EVENT_TRACE_PROPERTIES>() as u32;
            if ControlTraceW(
                CONTROLTRACE_HANDLE { Value: 0 },
                name.as_ptr(),
                props,
                EVENT_TRACE_CONTROL_QUERY,
            ) != 0
            {
                return None;
            }
            Some((
                u64::from((*props).EventsLost),
                u64::from((*props).RealTimeBuffersLost) + u64::from((*props).LogBuffersLost),
            ))
        }
    }

    pub fn now_filetime() -> u64 {
        // Safety: GetSystemTimeAsFileTime writes the FILETIME it is given.
        unsafe {
            let mut ft = std::mem::zeroed();
            GetSystemTimeAsFileTime(&mut ft);
            (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
        }
    }

    pub fn volume_map() -> VolumeMap {
        let mut map = VolumeMap::new();
        // Safety: GetLogicalDrives has no arguments; QueryDosDeviceW writes
        // at most the given number of UTF-16 units.
        let drives = unsafe { GetLogicalDrives() };
        for i in 0..26u8 {
            if drives & (1 << i) == 0 {
                continue;
            }
            let drive = format!("{}:", char::from(b'A' + i));
            let mut target = vec![0u16; 1024];
            let n = unsafe {
                QueryDosDeviceW(
                    wide(&drive).as_ptr(),
                    target.as_mut_ptr(),
                    target.len() as u32,
                )
            };
            if n == 0 {
                continue;
            }
            // A multi-string: the first entry is the current mapping.
            if let Some(device) = unsafe { from_wide(target.as_ptr()) } {
                map.insert(&device, &drive);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a test of ETW: under Wine (and unelevated Windows) the session
    /// cannot start; this shows what start does there and that the Win32
    /// helpers answer. Run with `--ignored --nocapture`.
    #[test]
    #[ignore = "needs an elevated Windows host to mean anything"]
    fn smoke() {
        let map = volume_map();
        println!("volume map: {map:?}");
        println!(
            r"\Device\HarddiskVolume1\x → {}",
            map.to_dos(r"\Device\HarddiskVolume1\x")
        );
        println!(
            "own command line: {:?}",
            win::command_line(std::process::id())
        );
        println!(
            "losses of a missing session: {:?}",
            win::session_losses("Vigil-FIM-none")
        );
        println!("own user: {:?}", win::process_user(std::process::id()));
        let procs = win::process_snapshot();
        println!("{} running processes, e.g. {:?}", procs.len(), procs.last());
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        match start(tx) {
            Ok(s) => {
                println!("session started");
                let got = rx.recv_timeout(Duration::from_secs(3));
                println!("first input: {got:?}");
                s.stop();
            }
            Err(e) => println!("start failed: {e}"),
        }
    }
}
