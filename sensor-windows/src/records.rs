//! Plain-Rust ETW records: the events of Microsoft-Windows-Kernel-File,
//! -Kernel-Registry and -Kernel-Process that the interpreter uses, with the
//! field names those providers' manifests use.
//!
//! These types know nothing of ferrisetw, so the interpreter that consumes them
//! is built and tested on every platform. The `etw` module (Windows only)
//! fills them from live records; [`crate::replay`] reads and writes them as
//! NDJSON so recorded sequences can be replayed in tests. Event ids, field names and keywords were
//! checked against public manifest dumps; docs/windows.md says where.

use serde::{Deserialize, Serialize};

/// Provider GUIDs (as `EnableTraceEx2` wants them) and their keyword masks.
pub mod providers {
    /// Microsoft-Windows-Kernel-File.
    pub const KERNEL_FILE: &str = "EDD08927-9CC4-4E65-B970-C2560FB5C289";
    /// Microsoft-Windows-Kernel-Registry.
    pub const KERNEL_REGISTRY: &str = "70EB4F03-C1DE-4F73-A051-33D13D5413BD";
    /// Microsoft-Windows-Kernel-Process.
    pub const KERNEL_PROCESS: &str = "22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716";

    /// Kernel-File keywords.
    pub mod file_kw {
        pub const FILENAME: u64 = 0x10;
        pub const FILEIO: u64 = 0x20;
        pub const OP_END: u64 = 0x40;
        pub const CREATE: u64 = 0x80;
        pub const READ: u64 = 0x100;
        pub const WRITE: u64 = 0x200;
        pub const DELETE_PATH: u64 = 0x400;
        pub const RENAME_SETLINK_PATH: u64 = 0x800;
        pub const CREATE_NEW_FILE: u64 = 0x1000;
    }

    /// Kernel-Registry keywords.
    pub mod reg_kw {
        pub const SET_SECURITY_KEY: u64 = 0x4;
        pub const SET_INFORMATION_KEY: u64 = 0x40;
        pub const SET_VALUE_KEY: u64 = 0x100;
        pub const DELETE_VALUE_KEY: u64 = 0x200;
        pub const CLOSE_KEY: u64 = 0x400;
        pub const CREATE_KEY: u64 = 0x1000;
        pub const OPEN_KEY: u64 = 0x2000;
        pub const DELETE_KEY: u64 = 0x4000;
    }

    /// Kernel-Process keywords.
    pub mod process_kw {
        pub const PROCESS: u64 = 0x10;
    }

    /// What Vigil enables on Kernel-File: names, the file I/O family (cleanup,
    /// close, set information, set delete, rename, set security), creates,
    /// writes, and the path-carrying delete and rename events. Not READ and not
    /// OP_END: both are high volume and say nothing about changes.
    pub const FILE_KEYWORDS: u64 = file_kw::FILENAME
        | file_kw::FILEIO
        | file_kw::CREATE
        | file_kw::WRITE
        | file_kw::DELETE_PATH
        | file_kw::RENAME_SETLINK_PATH
        | file_kw::CREATE_NEW_FILE;

    /// What Vigil enables on Kernel-Registry: opens and closes (to keep the
    /// KeyObject → key path map) and every change. Not query or enumerate.
    pub const REGISTRY_KEYWORDS: u64 = reg_kw::SET_SECURITY_KEY
        | reg_kw::SET_VALUE_KEY
        | reg_kw::DELETE_VALUE_KEY
        | reg_kw::CLOSE_KEY
        | reg_kw::CREATE_KEY
        | reg_kw::OPEN_KEY
        | reg_kw::DELETE_KEY;

    /// Process start and stop only (no threads, no image loads).
    pub const PROCESS_KEYWORDS: u64 = process_kw::PROCESS;
}

/// Event ids per provider.
pub mod ids {
    /// Microsoft-Windows-Kernel-File.
    pub mod file {
        pub const NAME_CREATE: u16 = 10;
        pub const NAME_DELETE: u16 = 11;
        pub const CREATE: u16 = 12;
        pub const CLEANUP: u16 = 13;
        pub const CLOSE: u16 = 14;
        pub const WRITE: u16 = 16;
        pub const SET_INFORMATION: u16 = 17;
        pub const SET_DELETE: u16 = 18;
        pub const RENAME: u16 = 19;
        pub const DELETE_PATH: u16 = 26;
        pub const RENAME_PATH: u16 = 27;
        pub const SET_LINK_PATH: u16 = 28;
        pub const RENAME_29: u16 = 29;
        pub const CREATE_NEW_FILE: u16 = 30;
        pub const SET_SECURITY: u16 = 31;
    }
    /// Microsoft-Windows-Kernel-Registry.
    pub mod registry {
        pub const CREATE_KEY: u16 = 1;
        pub const OPEN_KEY: u16 = 2;
        pub const DELETE_KEY: u16 = 3;
        pub const SET_VALUE_KEY: u16 = 5;
        pub const DELETE_VALUE_KEY: u16 = 6;
        pub const SET_INFORMATION_KEY: u16 = 11;
        pub const CLOSE_KEY: u16 = 13;
        pub const SET_SECURITY_KEY: u16 = 15;
    }
    /// Microsoft-Windows-Kernel-Process.
    pub mod process {
        pub const PROCESS_START: u16 = 1;
        pub const PROCESS_STOP: u16 = 2;
    }
}

/// NT constants the interpreter reads out of record fields.
pub mod nt {
    /// `CreateOptions` of Kernel-File Create: the high byte is the
    /// `CreateDisposition` of NtCreateFile, the low 24 bits its options.
    pub const DISPOSITION_SHIFT: u32 = 24;
    pub const FILE_SUPERSEDE: u32 = 0;
    pub const FILE_OPEN: u32 = 1;
    pub const FILE_CREATE: u32 = 2;
    pub const FILE_OPEN_IF: u32 = 3;
    pub const FILE_OVERWRITE: u32 = 4;
    pub const FILE_OVERWRITE_IF: u32 = 5;
    pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
    pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;

    /// `FILE_INFORMATION_CLASS` values seen in `InfoClass`.
    pub const FILE_BASIC_INFORMATION: u32 = 4;
    pub const FILE_RENAME_INFORMATION: u32 = 10;
    pub const FILE_LINK_INFORMATION: u32 = 11;
    pub const FILE_DISPOSITION_INFORMATION: u32 = 13;
    pub const FILE_ALLOCATION_INFORMATION: u32 = 19;
    pub const FILE_END_OF_FILE_INFORMATION: u32 = 20;
    pub const FILE_DISPOSITION_INFORMATION_EX: u32 = 64;
    pub const FILE_RENAME_INFORMATION_EX: u32 = 65;

    /// Kernel-Registry CreateKey `Disposition`.
    pub const REG_CREATED_NEW_KEY: u32 = 1;
    pub const REG_OPENED_EXISTING_KEY: u32 = 2;
}

/// What every ETW record carries in its header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// `EVENT_HEADER.TimeStamp`: FILETIME, 100 ns since 1601-01-01 UTC.
    pub timestamp: u64,
    /// `EVENT_HEADER.ProcessId`: the process the event was logged in.
    pub pid: u32,
    /// `EVENT_HEADER.ThreadId`.
    pub tid: u32,
    /// The SID extended data item (`EVENT_ENABLE_PROPERTY_SID`) as `S-1-...`:
    /// the user of the logging thread's token, impersonation included.
    pub user_sid: Option<String>,
}

/// Fields shared by the Kernel-File I/O events that name a file by object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIo {
    pub irp: u64,
    /// One per open (per handle's file object): the session key.
    pub file_object: u64,
    /// One per file (the file system's context): names survive across opens.
    pub file_key: u64,
    pub issuing_thread_id: u32,
}

/// One ETW record, reduced to the fields Vigil uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    // ---- Microsoft-Windows-Kernel-File ----
    /// 10 NameCreate: the file system now knows `file_key` by `file_name`.
    FileNameCreate { file_key: u64, file_name: String },
    /// 11 NameDelete: `file_key` no longer has that name.
    FileNameDelete { file_key: u64, file_name: String },
    /// 12 Create (open or create), and 30 CreateNewFile (`new_file` true:
    /// the open really created the file).
    FileCreate {
        irp: u64,
        file_object: u64,
        issuing_thread_id: u32,
        create_options: u32,
        create_attributes: u32,
        share_access: u32,
        file_name: String,
        new_file: bool,
    },
    /// 13 Cleanup: the last handle to this file object was closed.
    FileCleanup(FileIo),
    /// 14 Close: the file object is gone.
    FileClose(FileIo),
    /// 16 Write.
    FileWrite {
        io: FileIo,
        byte_offset: u64,
        io_size: u32,
    },
    /// 17 SetInformation, 18 SetDelete, 19 Rename, 31 SetSecurity: which one
    /// is in `op`; `info_class` is the `FILE_INFORMATION_CLASS`.
    FileSetInfo {
        op: SetInfoOp,
        io: FileIo,
        extra_information: u64,
        info_class: u32,
    },
    /// 26 DeletePath, 27 RenamePath, 28 SetLinkPath: the same as the
    /// SetInformation family plus `file_path`.
    FilePathOp {
        op: PathOp,
        io: FileIo,
        extra_information: u64,
        info_class: u32,
        file_path: String,
    },

    // ---- Microsoft-Windows-Kernel-Registry ----
    /// 1 CreateKey (`created` from `Disposition`), 2 OpenKey.
    RegOpenKey {
        base_object: u64,
        key_object: u64,
        status: u32,
        disposition: u32,
        base_name: String,
        relative_name: String,
        create: bool,
    },
    /// 3 DeleteKey.
    RegDeleteKey {
        key_object: u64,
        status: u32,
        key_name: String,
    },
    /// 5 SetValueKey. `captured_data`/`previous_data` exist in newer
    /// manifests only (the first bytes of the new and old data).
    RegSetValue {
        key_object: u64,
        status: u32,
        value_type: u32,
        data_size: u32,
        key_name: String,
        value_name: String,
        captured_data: Option<Vec<u8>>,
        previous_data_type: Option<u32>,
        previous_data_size: Option<u32>,
        previous_data: Option<Vec<u8>>,
    },
    /// 6 DeleteValueKey.
    RegDeleteValue {
        key_object: u64,
        status: u32,
        key_name: String,
        value_name: String,
    },
    /// 15 SetSecurityKey.
    RegSetSecurity {
        key_object: u64,
        status: u32,
        key_name: String,
    },
    /// 13 CloseKey.
    RegCloseKey { key_object: u64, key_name: String },

    // ---- Microsoft-Windows-Kernel-Process ----
    /// 1 ProcessStart. The provider has no command line and no user; the
    /// `etw` module fills `user_sid` from the record's SID extended data and
    /// `command_line` where it can read it (None otherwise).
    ProcessStart {
        process_id: u32,
        parent_process_id: u32,
        /// FILETIME.
        create_time: u64,
        session_id: u32,
        image_name: String,
        command_line: Option<String>,
        user_sid: Option<String>,
    },
    /// 2 ProcessStop.
    ProcessStop {
        process_id: u32,
        image_name: String,
        exit_code: u32,
    },

    // ---- the session itself ----
    /// ETW dropped events or buffers since the previous notice (from the
    /// session's `EventsLost` / `RealTimeBuffersLost` counters).
    Lost { events: u64, buffers: u64 },
}

/// Which SetInformation-family event a [`Record::FileSetInfo`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetInfoOp {
    /// 17 SetInformation.
    SetInformation,
    /// 18 SetDelete.
    SetDelete,
    /// 19 (and 29) Rename.
    Rename,
    /// 31 SetSecurity.
    SetSecurity,
}

/// Which path-carrying event a [`Record::FilePathOp`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathOp {
    /// 26 DeletePath.
    DeletePath,
    /// 27 RenamePath.
    RenamePath,
    /// 28 SetLinkPath (a hard link).
    SetLinkPath,
}
