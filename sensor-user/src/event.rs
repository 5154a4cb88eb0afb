//! The native `vigil` event schema (draft, version [`SCHEMA`]).
//!
//! One JSON object per line. Documented in docs/event-schema.md; field names
//! are part of the contract with SIEM pipelines, so change them only with the
//! schema version.
use serde::Serialize;

pub const SCHEMA: &str = "vigil/0.1";

#[derive(Debug, Serialize)]
pub struct Event {
    pub schema: &'static str,
    pub seq: u64,
    /// RFC 3339 UTC with nanoseconds.
    pub time: String,
    pub host: String,
    /// `file` or `sensor`.
    pub kind: &'static str,
    pub action: String,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Body {
    File(Box<FileChange>),
    Sensor(SensorInfo),
}

#[derive(Debug, Serialize)]
pub struct FileChange {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    pub file: FileInfo,
    /// The watched root that covers the path.
    pub watch: Option<String>,
    pub process: Process,
    pub source: Source,
    /// Syscall details that qualify the action (new mode, owner, flags...).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Default)]
pub struct FileInfo {
    /// file, dir, symlink, fifo, socket, char, block, or unknown.
    #[serde(rename = "type")]
    pub file_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub comm: String,
    pub uid: u32,
    pub user: Option<String>,
    pub gid: u32,
    pub group: Option<String>,
    pub euid: u32,
    pub egid: u32,
    pub login_uid: Option<u32>,
    pub login_user: Option<String>,
    pub session_id: Option<u32>,
    pub cgroup_id: u64,
    pub mnt_ns: u32,
    /// Process start, RFC 3339.
    pub start_time: String,
    pub container_id: Option<String>,
    pub parent: Option<ParentProcess>,
    pub ancestry: Vec<ParentProcess>,
}

#[derive(Debug, Serialize, Clone)]
pub struct ParentProcess {
    pub pid: u32,
    pub exe: Option<String>,
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Source {
    /// Hook tier: `tracepoint` here; `fentry`, `kprobe`, `lsm`, `scan` later.
    pub tier: &'static str,
    pub syscall: &'static str,
    /// `inode`: decided in the kernel on inodes; `path`: confirmed in user space
    /// on the path string.
    pub decided_by: &'static str,
}

#[derive(Debug, Serialize, Default)]
pub struct SensorInfo {
    pub version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks_failed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks_attached: Option<usize>,
    /// gap: records the kernel could not deliver since the previous gap event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
