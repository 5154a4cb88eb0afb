//! Synthetic ETW sequences through the interpreter. The sequences follow the
//! providers' documented events; none was recorded on a real host (see
//! docs/windows.md).
use super::*;
use crate::baseline::MapReader;
use crate::records::FileIo;
use std::sync::Mutex;

const VOL: &str = r"\Device\HarddiskVolume3";
const HOSTS: &str = r"C:\Windows\System32\drivers\etc\hosts";
const NOTEPAD: u32 = 4242;
const SECOND: u64 = 10_000_000;
const ALICE: &str = "S-1-5-21-1-2-3-1001";
const SYSTEM: &str = "S-1-5-18";

/// A reader the test changes while the interpreter holds it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<MapReader>>);

impl RegistryReader for Shared {
    fn read(&self, key: &str, value: &str) -> Result<RegistryValue, ReadError> {
        self.0.lock().unwrap().read(key, value)
    }
}

struct T {
    i: Interpreter,
    reg: Shared,
    now: u64,
}

fn nt(dos: &str) -> String {
    format!("{VOL}{}", dos.strip_prefix("C:").unwrap())
}

fn io(file_object: u64, file_key: u64) -> FileIo {
    FileIo {
        irp: 0,
        file_object,
        file_key,
        issuing_thread_id: 1,
    }
}

impl T {
    fn new() -> T {
        let reg = Shared::default();
        let i = Interpreter::new(
            Policy::pci_windows(),
            VolumeMap::new().with(VOL, "C:"),
            Box::new(reg.clone()),
            RegistryBaseline::new(),
        );
        T {
            i,
            reg,
            now: 133_000_000_000_000_000,
        }
    }

    fn push(&mut self, pid: u32, rec: Record) -> Vec<Change> {
        self.now += 1000;
        let h = Header {
            timestamp: self.now,
            pid,
            tid: pid + 1,
            user_sid: Some(if pid == 4 { SYSTEM } else { ALICE }.to_string()),
        };
        self.i.push(&h, rec)
    }

    /// Pushes records as one process; returns every change.
    fn run(&mut self, pid: u32, recs: Vec<Record>) -> Vec<Change> {
        recs.into_iter().flat_map(|r| self.push(pid, r)).collect()
    }

    fn start(&mut self, pid: u32, ppid: u32, image: &str, cmd: &str) {
        let r = Record::ProcessStart {
            process_id: pid,
            parent_process_id: ppid,
            create_time: self.now,
            session_id: 1,
            image_name: nt(image),
            command_line: Some(cmd.into()),
            user_sid: Some("S-1-5-21-1-2-3-1001".into()),
        };
        assert!(self.push(ppid, r).is_empty());
    }
}

fn create(fo: u64, path: &str, disposition: u32, options: u32) -> Record {
    Record::FileCreate {
        irp: 1,
        file_object: fo,
        issuing_thread_id: 1,
        create_options: (disposition << nt::DISPOSITION_SHIFT) | options,
        create_attributes: 0x80,
        share_access: 3,
        file_name: nt(path),
        new_file: false,
    }
}

fn create_new(fo: u64, path: &str) -> Record {
    match create(fo, path, nt::FILE_CREATE, 0) {
        Record::FileCreate {
            irp,
            file_object,
            issuing_thread_id,
            create_options,
            create_attributes,
            share_access,
            file_name,
            ..
        } => Record::FileCreate {
            irp,
            file_object,
            issuing_thread_id,
            create_options,
            create_attributes,
            share_access,
            file_name,
            new_file: true,
        },
        _ => unreachable!(),
    }
}

fn write(fo: u64, key: u64) -> Record {
    Record::FileWrite {
        io: io(fo, key),
        byte_offset: 0,
        io_size: 512,
    }
}

fn set_info(op: SetInfoOp, fo: u64, key: u64, class: u32) -> Record {
    Record::FileSetInfo {
        op,
        io: io(fo, key),
        extra_information: 0,
        info_class: class,
    }
}

fn path_op(op: PathOp, fo: u64, key: u64, class: u32, path: &str) -> Record {
    Record::FilePathOp {
        op,
        io: io(fo, key),
        extra_information: 0,
        info_class: class,
        file_path: nt(path),
    }
}

fn actions(c: &[Change]) -> Vec<(&'static str, &str, Option<&str>)> {
    c.iter()
        .map(|c| (c.action.as_str(), c.path.as_str(), c.target.as_deref()))
        .collect()
}

#[test]
fn notepad_saving_in_place_is_one_modified_settled_at_cleanup() {
    // Classic Notepad saves in place: CreateFile(CREATE_ALWAYS) is the NT
    // disposition FILE_OVERWRITE_IF, then writes, end-of-file, cleanup, close.
    let mut t = T::new();
    t.start(
        NOTEPAD,
        1000,
        r"C:\Windows\System32\notepad.exe",
        r#"notepad.exe C:\Windows\System32\drivers\etc\hosts"#,
    );
    let during = t.run(
        NOTEPAD,
        vec![
            create(1, HOSTS, nt::FILE_OVERWRITE_IF, 0x60),
            write(1, k1()),
            write(1, k1()),
            set_info(
                SetInfoOp::SetInformation,
                1,
                k1(),
                nt::FILE_END_OF_FILE_INFORMATION,
            ),
        ],
    );
    assert!(
        during.is_empty(),
        "nothing before the open settles: {during:?}"
    );
    let settled = t.push(NOTEPAD, Record::FileCleanup(io(1, k1())));
    assert_eq!(actions(&settled), vec![("modified", HOSTS, None)]);
    let c = &settled[0];
    assert_eq!(c.pid, NOTEPAD);
    assert_eq!(c.watch.as_deref(), Some(r"C:\Windows\System32\drivers\etc"));
    let p = c.process.as_ref().expect("attributed");
    assert_eq!(p.image.as_deref(), Some(r"C:\Windows\System32\notepad.exe"));
    assert_eq!(p.user_sid.as_deref(), Some("S-1-5-21-1-2-3-1001"));
    assert_eq!(p.parent_pid, 1000);
    assert!(
        t.push(4, Record::FileClose(io(1, k1()))).is_empty(),
        "close adds nothing"
    );
}

/// A FileKey for the tests (the value is opaque to the interpreter).
const fn k1() -> u64 {
    0xffff_a000_0000_1000
}

#[test]
fn temporary_file_renamed_over_the_target_is_one_rename() {
    // Editors that save safely write a temporary file next to the target and
    // rename it over the target (MoveFileEx REPLACE_EXISTING).
    let mut t = T::new();
    let tmp = r"C:\Windows\System32\drivers\etc\hosts~RF4a1.TMP";
    let c = t.run(
        NOTEPAD,
        vec![
            create_new(2, tmp),
            write(2, 0x22),
            Record::FileCleanup(io(2, 0x22)),
            Record::FileClose(io(2, 0x22)),
        ],
    );
    assert!(
        c.is_empty(),
        "the temporary file is ignored by the policy: {c:?}"
    );
    let c = t.run(
        NOTEPAD,
        vec![
            create(3, tmp, nt::FILE_OPEN, 0x20),
            set_info(SetInfoOp::Rename, 3, 0x22, nt::FILE_RENAME_INFORMATION_EX),
            path_op(
                PathOp::RenamePath,
                3,
                0x22,
                nt::FILE_RENAME_INFORMATION_EX,
                HOSTS,
            ),
            Record::FileCleanup(io(3, 0x22)),
            Record::FileClose(io(3, 0x22)),
        ],
    );
    assert_eq!(actions(&c), vec![("renamed", tmp, Some(HOSTS))]);
    assert_eq!(
        c[0].watch.as_deref(),
        Some(r"C:\Windows\System32\drivers\etc")
    );
}

#[test]
fn a_file_moved_into_a_watched_directory_is_reported() {
    let mut t = T::new();
    let src = r"C:\Users\alice\AppData\Local\Temp\evil.dll";
    let dst = r"C:\Windows\System32\evil.dll";
    let c = t.run(
        77,
        vec![
            create_new(5, src),
            write(5, 0x55),
            Record::FileCleanup(io(5, 0x55)),
            create(6, src, nt::FILE_OPEN, 0),
            path_op(
                PathOp::RenamePath,
                6,
                0x55,
                nt::FILE_RENAME_INFORMATION,
                dst,
            ),
            Record::FileCleanup(io(6, 0x55)),
        ],
    );
    assert_eq!(actions(&c), vec![("renamed", src, Some(dst))]);
}

#[test]
fn a_rename_whose_event_names_the_file_takes_the_target_from_name_create() {
    let mut t = T::new();
    let src = r"C:\Windows\System32\Tasks\A";
    let dst = r"C:\Windows\System32\Tasks\B";
    let mut c = t.run(
        9,
        vec![
            create(7, src, nt::FILE_OPEN, 0),
            write(7, 0x77),
            path_op(
                PathOp::RenamePath,
                7,
                0x77,
                nt::FILE_RENAME_INFORMATION,
                src,
            ),
        ],
    );
    c.extend(t.push(
        9,
        Record::FileNameCreate {
            file_key: 0x77,
            file_name: nt(dst),
        },
    ));
    c.extend(t.push(9, Record::FileCleanup(io(7, 0x77))));
    assert_eq!(
        actions(&c),
        vec![("renamed", src, Some(dst)), ("modified", dst, None)]
    );
    // Without a NameCreate the rename is still reported, target unknown.
    let c = t.run(
        9,
        vec![
            create(8, dst, nt::FILE_OPEN, 0),
            path_op(
                PathOp::RenamePath,
                8,
                0x88,
                nt::FILE_RENAME_INFORMATION,
                dst,
            ),
            Record::FileCleanup(io(8, 0x88)),
        ],
    );
    assert_eq!(actions(&c), vec![("renamed", dst, None)]);
    assert!(c[0].details.iter().any(|(k, _)| *k == "target"));
}

#[test]
fn delete_on_close_is_a_delete_at_cleanup() {
    // CreateFile(FILE_FLAG_DELETE_ON_CLOSE) → NtCreateFile FILE_DELETE_ON_CLOSE.
    let mut t = T::new();
    let task = r"C:\Windows\System32\Tasks\Updater";
    let c = t.run(
        31,
        vec![
            create(9, task, nt::FILE_OPEN, nt::FILE_DELETE_ON_CLOSE | 0x40),
            Record::FileCleanup(io(9, 0x99)),
            Record::FileClose(io(9, 0x99)),
        ],
    );
    assert_eq!(actions(&c), vec![("deleted", task, None)]);
}

#[test]
fn set_disposition_with_its_delete_path_is_one_delete() {
    // DeleteFileW: open, SetInformation(FileDispositionInformationEx) seen as
    // SetDelete (18) and DeletePath (26) for the same file object, cleanup.
    let mut t = T::new();
    let exe = r"C:\Windows\SysWOW64\calc.exe";
    let c = t.run(
        31,
        vec![
            create(10, exe, nt::FILE_OPEN, 0x40),
            set_info(
                SetInfoOp::SetDelete,
                10,
                0xa0,
                nt::FILE_DISPOSITION_INFORMATION_EX,
            ),
            path_op(
                PathOp::DeletePath,
                10,
                0xa0,
                nt::FILE_DISPOSITION_INFORMATION_EX,
                exe,
            ),
            Record::FileCleanup(io(10, 0xa0)),
            Record::FileClose(io(10, 0xa0)),
        ],
    );
    assert_eq!(actions(&c), vec![("deleted", exe, None)]);
    // A file opened before the trace started: DeletePath alone names it.
    let c = t.run(
        31,
        vec![
            path_op(
                PathOp::DeletePath,
                11,
                0xb0,
                nt::FILE_DISPOSITION_INFORMATION,
                HOSTS,
            ),
            Record::FileCleanup(io(11, 0xb0)),
        ],
    );
    assert_eq!(actions(&c), vec![("deleted", HOSTS, None)]);
}

#[test]
fn created_files_attributes_and_security() {
    let mut t = T::new();
    let lnk = r"C:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp\run.lnk";
    let c = t.run(
        50,
        vec![
            create(12, lnk, nt::FILE_CREATE, 0),
            create_new(12, lnk),
            write(12, 0xc0),
            set_info(
                SetInfoOp::SetInformation,
                12,
                0xc0,
                nt::FILE_BASIC_INFORMATION,
            ),
            set_info(SetInfoOp::SetSecurity, 12, 0xc0, 0),
            Record::FileCleanup(io(12, 0xc0)),
        ],
    );
    assert_eq!(
        actions(&c),
        vec![
            ("permissions_changed", lnk, None),
            ("created", lnk, None),
            ("attributes_changed", lnk, None)
        ]
    );
}

#[test]
fn writes_to_unwatched_paths_are_ignored() {
    let mut t = T::new();
    let doc = r"C:\Users\alice\Documents\notes.txt";
    let c = t.run(
        NOTEPAD,
        vec![
            create(13, doc, nt::FILE_OVERWRITE_IF, 0),
            write(13, 0xd0),
            Record::FileCleanup(io(13, 0xd0)),
            Record::FileClose(io(13, 0xd0)),
        ],
    );
    assert!(c.is_empty(), "{c:?}");
    // A write on an object never seen opened or named is counted, not guessed.
    assert!(t.push(NOTEPAD, write(99, 0x9999)).is_empty());
    assert_eq!(t.i.stats().unknown_file_objects, 1);
}

#[test]
fn lazy_writer_writes_after_cleanup_are_attributed_to_the_opener() {
    let mut t = T::new();
    t.start(
        NOTEPAD,
        1000,
        r"C:\Windows\System32\notepad.exe",
        "notepad.exe",
    );
    let c = t.run(
        NOTEPAD,
        vec![
            create(14, HOSTS, nt::FILE_OPEN, 0),
            Record::FileCleanup(io(14, 0xe0)),
        ],
    );
    assert!(c.is_empty(), "opened and closed without a write: {c:?}");
    // The cache manager flushes in the System process (pid 4), then closes.
    // (A write through a mapped view reaches the file only this way.)
    let c = t.run(4, vec![write(14, 0xe0), Record::FileClose(io(14, 0xe0))]);
    assert_eq!(actions(&c), vec![("modified", HOSTS, None)]);
    assert_eq!(c[0].pid, NOTEPAD);
    assert_eq!(
        c[0].user_sid.as_deref(),
        Some(ALICE),
        "the opener's user, not SYSTEM"
    );
    assert_eq!(
        c[0].process.as_ref().and_then(|p| p.image.as_deref()),
        Some(r"C:\Windows\System32\notepad.exe")
    );
}

fn open_key(key_object: u64, base_object: u64, base: &str, rel: &str, created: bool) -> Record {
    Record::RegOpenKey {
        base_object,
        key_object,
        status: 0,
        disposition: if created {
            nt::REG_CREATED_NEW_KEY
        } else {
            nt::REG_OPENED_EXISTING_KEY
        },
        base_name: base.into(),
        relative_name: rel.into(),
        create: true,
    }
}

fn set_value(key_object: u64, key_name: &str, value: &str, v: &RegistryValue) -> Record {
    Record::RegSetValue {
        key_object,
        status: 0,
        value_type: v.value_type,
        data_size: v.size() as u32,
        key_name: key_name.into(),
        value_name: value.into(),
        captured_data: None,
        previous_data_type: None,
        previous_data_size: None,
        previous_data: None,
    }
}

const VIGIL_NT: &str = r"\REGISTRY\MACHINE\SOFTWARE\Vigil";
const VIGIL: &str = r"HKLM\SOFTWARE\Vigil";

#[test]
fn reg_add_of_a_new_value_fimtest_has_empty_before_and_fimtest_after() {
    // reg add HKLM\SOFTWARE\Vigil /v FIMTEST /t REG_SZ /d FIMTEST
    let mut t = T::new();
    t.start(
        600,
        500,
        r"C:\Windows\System32\reg.exe",
        r"reg add HKLM\SOFTWARE\Vigil /v FIMTEST /t REG_SZ /d FIMTEST",
    );
    let c = t.push(
        600,
        open_key(0x1, 0, r"\REGISTRY\MACHINE", r"SOFTWARE\Vigil", true),
    );
    assert_eq!(actions(&c), vec![("key_created", VIGIL, None)]);
    let v = RegistryValue::sz("FIMTEST");
    t.reg.0.lock().unwrap().set(VIGIL, "FIMTEST", v.clone());
    let c = t.push(600, set_value(0x1, VIGIL_NT, "FIMTEST", &v));
    assert_eq!(actions(&c), vec![("value_set", VIGIL, None)]);
    let val = c[0].value.as_ref().unwrap();
    assert_eq!(val.name, "FIMTEST");
    assert_eq!(val.before, None, "a new value has an empty before");
    assert_eq!(
        val.after.as_ref().map(|a| a.display()).as_deref(),
        Some("FIMTEST")
    );
    assert_eq!(val.after.as_ref().map(|a| a.type_name()), Some("REG_SZ"));
    assert_eq!(
        c[0].process
            .as_ref()
            .and_then(|p| p.command_line.as_deref()),
        Some(r"reg add HKLM\SOFTWARE\Vigil /v FIMTEST /t REG_SZ /d FIMTEST")
    );
    assert_eq!(t.i.baseline().get(VIGIL, "fimtest"), Some(&v));

    // Set again to the same data: nothing changed, nothing reported.
    assert!(t
        .push(600, set_value(0x1, VIGIL_NT, "FIMTEST", &v))
        .is_empty());
    assert_eq!(t.i.stats().unchanged_values, 1);

    // reg add ... /d CHANGED /f: before is the baseline's.
    let v2 = RegistryValue::sz("CHANGED");
    t.reg.0.lock().unwrap().set(VIGIL, "FIMTEST", v2.clone());
    let c = t.push(600, set_value(0x1, VIGIL_NT, "FIMTEST", &v2));
    let val = c[0].value.as_ref().unwrap();
    assert_eq!(
        val.before.as_ref().map(|b| b.display()).as_deref(),
        Some("FIMTEST")
    );
    assert_eq!(
        val.after.as_ref().map(|a| a.display()).as_deref(),
        Some("CHANGED")
    );

    // reg delete HKLM\SOFTWARE\Vigil /v FIMTEST /f
    t.reg.0.lock().unwrap().remove(VIGIL, "FIMTEST");
    let c = t.push(
        600,
        Record::RegDeleteValue {
            key_object: 0x1,
            status: 0,
            key_name: VIGIL_NT.into(),
            value_name: "FIMTEST".into(),
        },
    );
    assert_eq!(actions(&c), vec![("value_deleted", VIGIL, None)]);
    let val = c[0].value.as_ref().unwrap();
    assert_eq!(
        val.before.as_ref().map(|b| b.display()).as_deref(),
        Some("CHANGED")
    );
    assert_eq!(val.after, None);
    assert!(t.i.baseline().is_empty());
}

#[test]
fn reg_delete_of_a_key_forgets_its_values() {
    let mut t = T::new();
    let sub = r"HKLM\SOFTWARE\Vigil\Sub";
    t.push(7, open_key(0x2, 0, "", &format!(r"{VIGIL_NT}\Sub"), true));
    let v = RegistryValue::dword(1);
    t.reg.0.lock().unwrap().set(sub, "x", v.clone());
    assert_eq!(
        t.push(7, set_value(0x2, "", "x", &v)).len(),
        1,
        "KeyName empty: named by its object"
    );
    assert_eq!(t.i.baseline().len(), 1);
    let c = t.run(
        7,
        vec![
            Record::RegDeleteKey {
                key_object: 0x2,
                status: 0,
                key_name: String::new(),
            },
            Record::RegCloseKey {
                key_object: 0x2,
                key_name: String::new(),
            },
        ],
    );
    assert_eq!(actions(&c), vec![("key_deleted", sub, None)]);
    assert!(t.i.baseline().is_empty());
    // The object is closed: a later event on it cannot be named.
    assert!(t.push(7, set_value(0x2, "", "x", &v)).is_empty());
    assert_eq!(t.i.stats().unresolved_keys, 1);
}

#[test]
fn a_keys_new_security_descriptor_is_reported() {
    // Set-Acl HKLM:\SOFTWARE\Vigil (RegSetKeySecurity), by key name and by
    // an opened key's object; a denied one reports nothing.
    let mut t = T::new();
    let c = t.push(
        9,
        Record::RegSetSecurity {
            key_object: 0x30,
            status: 0,
            key_name: VIGIL_NT.into(),
        },
    );
    assert_eq!(actions(&c), vec![("key_permissions_changed", VIGIL, None)]);
    assert_eq!(c[0].pid, 9);
    assert!(c[0].value.is_none(), "a key's security is not a value");
    t.push(9, open_key(0x31, 0, "", &format!(r"{VIGIL_NT}\Sub"), false));
    let c = t.push(
        9,
        Record::RegSetSecurity {
            key_object: 0x31,
            status: 0,
            key_name: String::new(),
        },
    );
    assert_eq!(
        actions(&c),
        vec![("key_permissions_changed", r"HKLM\SOFTWARE\Vigil\Sub", None)]
    );
    let denied = t.push(
        9,
        Record::RegSetSecurity {
            key_object: 0x31,
            status: 0xC000_0022, // STATUS_ACCESS_DENIED
            key_name: String::new(),
        },
    );
    assert!(denied.is_empty());
    assert_eq!(t.i.stats().failed_registry_ops, 1);
}

#[test]
fn keys_opened_relative_to_a_base_object_are_named_in_full() {
    let mut t = T::new();
    let run = r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\Run";
    t.push(
        8,
        open_key(0x10, 0, r"\REGISTRY\USER", r"S-1-5-21-1-2-3-1001", false),
    );
    t.push(
        8,
        open_key(
            0x11,
            0x10,
            "",
            r"Software\Microsoft\Windows\CurrentVersion\Run",
            false,
        ),
    );
    let v = RegistryValue::sz(r"C:\Users\Public\evil.exe");
    t.reg.0.lock().unwrap().set(run, "Updater", v.clone());
    let c = t.push(8, set_value(0x11, "", "Updater", &v));
    assert_eq!(actions(&c), vec![("value_set", run, None)]);
    assert_eq!(
        c[0].watch.as_deref(),
        Some(r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run")
    );
}

#[test]
fn failed_and_unwatched_registry_operations_report_nothing() {
    let mut t = T::new();
    t.push(
        8,
        open_key(
            0x20,
            0,
            "",
            r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Notepad",
            false,
        ),
    );
    let v = RegistryValue::dword(1);
    assert!(t.push(8, set_value(0x20, "", "iWindowPosX", &v)).is_empty());
    let mut failed = set_value(0x1, VIGIL_NT, "x", &v);
    if let Record::RegSetValue { status, .. } = &mut failed {
        *status = 0xC000_0022; // STATUS_ACCESS_DENIED
    }
    assert!(t.push(8, failed).is_empty());
    assert_eq!(t.i.stats().failed_registry_ops, 1);
}

#[test]
fn the_events_own_data_fills_in_before_and_after() {
    let mut t = T::new();
    let v = RegistryValue::sz("new");
    let old = RegistryValue::sz("old");
    let bytes = |v: &RegistryValue| match &v.data {
        crate::baseline::RegistryData::Bytes(b) => b.clone(),
        _ => unreachable!(),
    };
    // The registry already holds a later value: the event's complete
    // CapturedData is this set's own, and wins over the read.
    t.reg
        .0
        .lock()
        .unwrap()
        .set(VIGIL, "x", RegistryValue::sz("later"));
    let rec = |captured: Option<Vec<u8>>| Record::RegSetValue {
        key_object: 0,
        status: 0,
        value_type: 1,
        data_size: v.size() as u32,
        key_name: VIGIL_NT.into(),
        value_name: "x".into(),
        captured_data: captured,
        previous_data_type: Some(1),
        previous_data_size: Some(old.size() as u32),
        previous_data: Some(bytes(&old)),
    };
    let c = t.push(8, rec(Some(bytes(&v))));
    let val = c[0].value.as_ref().unwrap();
    assert_eq!(
        val.before,
        Some(old.clone()),
        "PreviousData stands in for a missing baseline"
    );
    assert_eq!(val.after, Some(v.clone()));
    assert!(
        val.note.as_deref().unwrap().contains("PreviousData"),
        "{val:?}"
    );
    // A truncated capture does not count: the value is read, and here it
    // is gone again.
    t.reg.0.lock().unwrap().remove(VIGIL, "x");
    let c = t.push(8, rec(Some(bytes(&v)[..4].to_vec())));
    let val = c[0].value.as_ref().unwrap();
    assert_eq!(val.before, Some(v), "the baseline now has the first set");
    assert_eq!(val.after, None);
    assert!(
        val.note.as_deref().unwrap().contains("deleted again"),
        "{val:?}"
    );
}

#[test]
fn exited_processes_are_kept_for_a_grace_period() {
    let mut t = T::new();
    t.start(
        300,
        1,
        r"C:\Windows\System32\cmd.exe",
        "cmd /c echo x > hosts",
    );
    let stop = Record::ProcessStop {
        process_id: 300,
        image_name: "cmd.exe".into(),
        exit_code: 0,
    };
    assert!(t.push(300, stop).is_empty());
    // Its handles are cleaned up after the stop event: still attributed.
    let c = t.run(
        300,
        vec![
            create(15, HOSTS, nt::FILE_OVERWRITE_IF, 0),
            write(15, 0xf0),
            Record::FileCleanup(io(15, 0xf0)),
        ],
    );
    let p = c[0].process.as_ref().expect("still known");
    assert_eq!(p.exit_code, Some(0));
    assert_eq!(p.command_line.as_deref(), Some("cmd /c echo x > hosts"));
    // Past the grace period the next start forgets it.
    t.now += 11 * SECOND;
    t.start(301, 1, r"C:\Windows\System32\cmd.exe", "cmd");
    assert!(t.i.processes().get(300).is_none());
    assert!(t.i.processes().get(301).is_some());
}

#[test]
fn lost_events_become_a_gap() {
    let mut t = T::new();
    let c = t.push(
        0,
        Record::Lost {
            events: 12,
            buffers: 1,
        },
    );
    assert_eq!(actions(&c), vec![("gap", "", None)]);
    assert_eq!(c[0].lost, Some(12));
    assert!(c[0].details.contains(&("buffers_lost", "1".to_string())));
    assert!(t
        .push(
            0,
            Record::Lost {
                events: 0,
                buffers: 0
            }
        )
        .is_empty());
    assert_eq!(t.i.stats().lost_events, 12);
}

#[test]
fn a_new_file_renamed_over_the_target_is_created_then_renamed() {
    // A temporary name the policy does not ignore: both steps are reported,
    // in order, by the same process; sensor-user's coalescer folds a created
    // file renamed by its creator into one `modified` of the target.
    let mut t = T::new();
    let new = r"C:\Windows\System32\drivers\etc\hosts.new";
    let c = t.run(
        NOTEPAD,
        vec![
            create_new(16, new),
            write(16, 0x16),
            Record::FileCleanup(io(16, 0x16)),
            Record::FileClose(io(16, 0x16)),
            create(17, new, nt::FILE_OPEN, 0),
            path_op(
                PathOp::RenamePath,
                17,
                0x16,
                nt::FILE_RENAME_INFORMATION,
                HOSTS,
            ),
            Record::FileCleanup(io(17, 0x16)),
        ],
    );
    assert_eq!(
        actions(&c),
        vec![("created", new, None), ("renamed", new, Some(HOSTS))]
    );
    assert!(c
        .iter()
        .all(|c| c.pid == NOTEPAD && c.user_sid.as_deref() == Some(ALICE)));
}

#[test]
fn an_object_reopened_before_its_cleanup_reports_only_proven_opens() {
    let mut t = T::new();
    // A write proves the open succeeded: its change is reported when the
    // object is opened again even though its Cleanup never came.
    let c = t.run(
        NOTEPAD,
        vec![
            create(20, HOSTS, nt::FILE_OVERWRITE_IF, 0),
            write(20, 0x20),
            create(20, r"C:\Users\alice\x.txt", nt::FILE_OPEN, 0),
        ],
    );
    assert_eq!(actions(&c), vec![("modified", HOSTS, None)]);
    // An overwriting Create alone may have failed (Create has no status):
    // nothing is claimed, the replacement is counted.
    let c = t.run(
        NOTEPAD,
        vec![
            create(21, HOSTS, nt::FILE_OVERWRITE_IF, 0),
            create(21, r"C:\Users\alice\y.txt", nt::FILE_OPEN, 0),
        ],
    );
    assert!(c.is_empty(), "{c:?}");
    assert_eq!(t.i.stats().replaced_sessions, 2);
}

#[test]
fn arbitrary_record_sequences_never_panic_and_stay_bounded() {
    // A deterministic xorshift stream of records with colliding objects,
    // odd names, failed statuses and out-of-order events.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let names = [
        HOSTS,
        r"C:\Windows\System32\x.dll",
        r"C:\Users\a\b",
        "",
        r"\Device\HarddiskVolume9\z",
        r"C:\",
    ];
    let keys = [
        VIGIL_NT,
        "",
        r"\REGISTRY\USER\S-1-5-18\Software",
        "Software\\Run",
        r"\REGISTRY\",
    ];
    let mut t = T::new();
    for _ in 0..20_000 {
        let r = next();
        let fo = r % 7;
        let fk = (r >> 8) % 5;
        let name = names[(r >> 16) as usize % names.len()].to_string();
        let key = keys[(r >> 20) as usize % keys.len()].to_string();
        let class = [4, 10, 13, 19, 20, 64, 65, 0, 9999][(r >> 24) as usize % 9];
        let rec = match (r >> 32) % 17 {
            0 => create(fo, HOSTS, ((r >> 40) % 7) as u32, (r >> 44) as u32 & 0x1fff),
            1 => create_new(fo, r"C:\Windows\System32\Tasks\T"),
            2 => write(fo, fk),
            3 => set_info(SetInfoOp::SetInformation, fo, fk, class),
            4 => set_info(SetInfoOp::SetDelete, fo, fk, class),
            5 => set_info(SetInfoOp::SetSecurity, fo, fk, class),
            6 => Record::FilePathOp {
                op: [PathOp::DeletePath, PathOp::RenamePath, PathOp::SetLinkPath]
                    [(r >> 40) as usize % 3],
                io: io(fo, fk),
                extra_information: 0,
                info_class: class,
                file_path: name,
            },
            7 => Record::FileCleanup(io(fo, fk)),
            8 => Record::FileClose(io(fo, fk)),
            9 => Record::FileNameCreate {
                file_key: fk,
                file_name: name,
            },
            10 => open_key(fo, (r >> 40) % 3, &key, "Sub", r & 1 == 0),
            11 => set_value(fo, &key, "v", &RegistryValue::dword(r as u32)),
            12 => Record::RegDeleteValue {
                key_object: fo,
                status: (r >> 40) as u32 % 2,
                key_name: key,
                value_name: "v".into(),
            },
            13 => Record::RegDeleteKey {
                key_object: fo,
                status: 0,
                key_name: key,
            },
            14 => Record::RegCloseKey {
                key_object: fo,
                key_name: key,
            },
            15 => Record::RegSetSecurity {
                key_object: fo,
                status: (r >> 40) as u32 % 2,
                key_name: key,
            },
            _ => Record::ProcessStop {
                process_id: (r >> 40) as u32 % 4,
                image_name: name,
                exit_code: 0,
            },
        };
        t.push((r >> 50) as u32 % 4, rec);
    }
    assert!(t.i.stats().records == 20_000);
    assert!(t.i.processes().len() <= 4 + 1);
}

#[test]
fn the_flush_of_data_cleanup_already_reported_is_not_a_second_change() {
    let mut t = T::new();
    let c = t.run(
        NOTEPAD,
        vec![
            create(22, HOSTS, nt::FILE_OVERWRITE_IF, 0),
            write(22, 0x22),
            Record::FileCleanup(io(22, 0x22)),
        ],
    );
    assert_eq!(actions(&c), vec![("modified", HOSTS, None)]);
    // The cache manager writes the same data out, then the object closes.
    let c = t.run(
        4,
        vec![
            write(22, 0x22),
            write(22, 0x22),
            Record::FileClose(io(22, 0x22)),
        ],
    );
    assert!(c.is_empty(), "{c:?}");
}

#[test]
fn a_flush_through_another_opens_file_object_is_not_misattributed() {
    // A scanner opens hosts to read it (its file object sets up caching);
    // Notepad then rewrites it; the cache manager flushes Notepad's data
    // through the scanner's file object before closing that object.
    let mut t = T::new();
    let c = t.run(
        900,
        vec![
            create(23, HOSTS, nt::FILE_OPEN, 0),
            Record::FileCleanup(io(23, 0x23)),
        ],
    );
    assert!(c.is_empty());
    let c = t.run(
        NOTEPAD,
        vec![
            create(24, HOSTS, nt::FILE_OVERWRITE_IF, 0),
            write(24, 0x23),
            Record::FileCleanup(io(24, 0x23)),
        ],
    );
    assert_eq!(actions(&c), vec![("modified", HOSTS, None)]);
    assert_eq!(c[0].pid, NOTEPAD);
    let c = t.run(4, vec![write(23, 0x23), Record::FileClose(io(23, 0x23))]);
    assert!(c.is_empty(), "not a change by the scanner: {c:?}");
}

#[test]
fn create_and_create_new_file_of_one_open_merge_in_either_order() {
    let mut t = T::new();
    let lnk = r"C:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp\b.lnk";
    let c = t.run(
        50,
        vec![
            create_new(25, lnk),
            create(25, lnk, nt::FILE_OVERWRITE_IF, 0),
            write(25, 0x25),
            Record::FileCleanup(io(25, 0x25)),
        ],
    );
    assert_eq!(actions(&c), vec![("created", lnk, None)]);
    assert_eq!(t.i.stats().replaced_sessions, 0);
}
