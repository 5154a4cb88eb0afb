//! `[[output]]` tables: which sink, and its settings.
//!
//! Deserialized with unknown keys rejected. Values serde can check (names of
//! facilities and kinds, durations) are checked while parsing, so the policy
//! loader can name the line and column; the rest is checked by
//! [`SinkConfig::check`], which [`super::open`] calls first.
use crate::schema::Format;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One output. `type` chooses the sink; every other key has a default except
/// `path` (file), `address` (syslog) and `url` (http).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// One JSON line per event on standard output.
    Stdout {
        /// Schema of the lines: `native` (default), `ocsf` or `ecs`.
        #[serde(default)]
        format: Format,
    },
    /// NDJSON appended to a file (created mode 0600), rotated by size and/or time.
    File {
        /// The file written; rotated files are `<path>.1` (newest) to `<path>.<keep>`.
        path: PathBuf,
        /// Schema of the lines: `native` (default), `ocsf` or `ecs`.
        #[serde(default)]
        format: Format,
        /// Rotate before a line would make the file larger than this; 0: never
        /// by size. Default 100.
        #[serde(default = "default_max_size_mib")]
        max_size_mib: u64,
        /// Rotate when the UTC clock enters a new period of this length
        /// (`"1h"`: on the hour, `"1d"`: at midnight UTC); units s, m, h, d.
        /// Default: never by time.
        #[serde(default)]
        rotate_every: Option<HumanDuration>,
        /// Rotated files kept; older ones are deleted. 0: none kept. Default 5.
        #[serde(default = "default_keep")]
        keep: u32,
        /// Lines held in memory while the file cannot be written (disk full);
        /// beyond this, new lines are dropped and counted as a gap. Default 16.
        #[serde(default = "default_queue_max_mib")]
        queue_max_mib: u64,
    },
    /// RFC 5424 syslog over UDP, TCP (octet counting) or a unix socket.
    Syslog {
        /// `udp://host:port`, `tcp://host:port`, `unix:///dev/log` (datagram,
        /// else stream), `unixgram://PATH` or `unixstream://PATH`.
        address: String,
        /// Schema of the JSON in MSG: `native` (default), `ocsf` or `ecs`.
        #[serde(default)]
        format: Format,
        /// Syslog facility: `kern`, `user`, `mail`, `daemon`, `auth`, `syslog`,
        /// `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `local0`..`local7`.
        /// Default `local0`.
        #[serde(default)]
        facility: Facility,
        /// Messages held in memory while the receiver is unreachable; beyond
        /// this, new messages are dropped and counted as a gap. Default 16.
        #[serde(default = "default_queue_max_mib")]
        queue_max_mib: u64,
    },
    /// Batches POSTed to Splunk HEC, Elasticsearch `_bulk`, or any NDJSON
    /// endpoint; spooled to disk while the receiver is down.
    Http {
        /// `http://` or `https://` URL. With no path (or `/`), the kind's
        /// usual path is added: `/services/collector/event` for `hec`, `/_bulk`
        /// for `elastic`.
        url: String,
        /// `hec`, `elastic` or `generic` (NDJSON POST). Default `generic`.
        #[serde(default)]
        kind: HttpKind,
        /// Sent as `Authorization: Splunk <token>` (hec), `ApiKey <token>`
        /// (elastic) or `Bearer <token>` (generic). Required for hec.
        #[serde(default)]
        token: Option<String>,
        /// HTTP Basic authentication (elastic, generic), with `password`.
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        /// elastic: the `_index` of each document (required unless the URL is
        /// `/<index>/_bulk`). hec: the event's `index` (the token's default
        /// index when absent).
        #[serde(default)]
        index: Option<String>,
        /// hec: the events' `sourcetype`. Default `vigil`.
        #[serde(default = "default_sourcetype")]
        sourcetype: String,
        /// Directory of the disk spool; one per http sink. Default
        /// `/var/lib/vigil/spool/<kind>-<host>-<port>`.
        #[serde(default)]
        spool_dir: Option<PathBuf>,
        /// Disk the spool may use; beyond it, new events are dropped and counted
        /// as a gap. Default 256.
        #[serde(default = "default_spool_max_mib")]
        spool_max_mib: u64,
        /// A batch is sent when it holds this many events... Default 500.
        #[serde(default = "default_batch_max_events")]
        batch_max_events: usize,
        /// ...or this many bytes of body... Default 1048576 (1 MiB).
        #[serde(default = "default_batch_max_bytes")]
        batch_max_bytes: usize,
        /// ...or when its first event is this old. Default 1000.
        #[serde(default = "default_batch_delay_ms")]
        batch_delay_ms: u64,
        /// Timeout of one request, connection included. Default 10000.
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
        /// Schema of the events: `native` (default), `ocsf` or `ecs`.
        #[serde(default)]
        format: Format,
    },
}

fn default_max_size_mib() -> u64 {
    100
}
fn default_keep() -> u32 {
    5
}
fn default_queue_max_mib() -> u64 {
    16
}
fn default_sourcetype() -> String {
    "vigil".into()
}
fn default_spool_max_mib() -> u64 {
    256
}
fn default_batch_max_events() -> usize {
    500
}
fn default_batch_max_bytes() -> usize {
    1 << 20
}
fn default_batch_delay_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// Syslog facilities (RFC 5424 §6.2.1 codes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// What the http sink talks to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpKind {
    /// Splunk HTTP Event Collector.
    Hec,
    /// Elasticsearch / OpenSearch `_bulk`.
    Elastic,
    /// NDJSON body, one event per line.
    #[default]
    Generic,
}

/// A duration written as a number and a unit: `30s`, `15m`, `1h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration {s:?}: write a number and a unit s, m, h or d, e.g. \"1d\"")
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = t[..split].parse().map_err(|_| bad())?;
        let unit = match &t[split..] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        if n == 0 {
            return Err(format!("invalid duration {s:?}: must be more than zero"));
        }
        n.checked_mul(unit)
            .map(|secs| HumanDuration(Duration::from_secs(secs)))
            .ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl SinkConfig {
    /// A native NDJSON file with the default rotation (`--output FILE`).
    pub fn file(path: PathBuf) -> SinkConfig {
        SinkConfig::File {
            path,
            format: Format::Native,
            max_size_mib: default_max_size_mib(),
            rotate_every: None,
            keep: default_keep(),
            queue_max_mib: default_queue_max_mib(),
        }
    }

    /// The `type` key, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::Stdout { .. } => "stdout",
            SinkConfig::File { .. } => "file",
            SinkConfig::Syslog { .. } => "syslog",
            SinkConfig::Http { .. } => "http",
        }
    }

    /// Checks what parsing could not, without opening anything.
    pub fn check(&self) -> Result<()> {
        match self {
            SinkConfig::Stdout { .. } => {}
            SinkConfig::File {
                path,
                queue_max_mib,
                ..
            } => {
                if path.as_os_str().is_empty() || path.file_name().is_none() {
                    bail!("sink file: path {path:?} must name a file");
                }
                if *queue_max_mib == 0 {
                    bail!("sink file: queue_max_mib must be at least 1");
                }
            }
            SinkConfig::Syslog {
                address,
                queue_max_mib,
                ..
            } => {
                super::syslog::Target::parse(address)?;
                if *queue_max_mib == 0 {
                    bail!("sink syslog: queue_max_mib must be at least 1");
                }
            }
            SinkConfig::Http { .. } => {
                super::http::Settings::from_config(self, "check")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        output: Vec<SinkConfig>,
    }

    fn parse(text: &str) -> Result<Vec<SinkConfig>, toml::de::Error> {
        toml::from_str::<Doc>(text).map(|d| d.output)
    }

    #[test]
    fn defaults_apply() {
        let o = parse(
            "[[output]]\ntype = \"stdout\"\n\
             [[output]]\ntype = \"file\"\npath = \"/var/log/vigil.json\"\nrotate_every = \"1d\"\n\
             [[output]]\ntype = \"syslog\"\naddress = \"udp://127.0.0.1:514\"\nfacility = \"auth\"\n\
             [[output]]\ntype = \"http\"\nurl = \"http://127.0.0.1:9200\"\nkind = \"elastic\"\nindex = \"fim\"\n",
        )
        .unwrap();
        assert_eq!(
            o[0],
            SinkConfig::Stdout {
                format: Format::Native
            }
        );
        match &o[1] {
            SinkConfig::File {
                max_size_mib,
                rotate_every,
                keep,
                ..
            } => {
                assert_eq!(*max_size_mib, 100);
                assert_eq!(*keep, 5);
                assert_eq!(rotate_every.unwrap().0, Duration::from_secs(86_400));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            o[2],
            SinkConfig::Syslog {
                facility: Facility::Auth,
                ..
            }
        ));
        match &o[3] {
            SinkConfig::Http {
                kind,
                batch_max_events,
                spool_max_mib,
                ..
            } => {
                assert_eq!(*kind, HttpKind::Elastic);
                assert_eq!(*batch_max_events, 500);
                assert_eq!(*spool_max_mib, 256);
            }
            other => panic!("{other:?}"),
        }
        for c in &o {
            c.check().unwrap();
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_a_reason() {
        let e = parse("[[output]]\ntype = \"file\"\npath = \"/x\"\nmax_size = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `max_size`"), "{e}");
        let e = parse(
            "[[output]]\ntype = \"syslog\"\naddress = \"udp://h:1\"\nfacility = \"local9\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("local9"), "{e}");
        let e = parse("[[output]]\ntype = \"file\"\npath = \"/x\"\nrotate_every = \"1w\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("invalid duration \"1w\""), "{e}");
        let e = parse("[[output]]\ntype = \"kafka\"\n").unwrap_err();
        assert!(e.to_string().contains("kafka"), "{e}");
    }

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0.as_secs());
        assert_eq!(d("30s"), Ok(30));
        assert_eq!(d("15m"), Ok(900));
        assert_eq!(d("1h"), Ok(3600));
        assert_eq!(d("2d"), Ok(172_800));
        assert!(d("0h").is_err());
        assert!(d("h").is_err());
        assert!(d("1.5h").is_err());
        assert!(d("1").is_err());
    }

    #[test]
    fn check_names_the_key() {
        let c = SinkConfig::Http {
            url: "xyz".into(),
            kind: HttpKind::Generic,
            token: None,
            username: None,
            password: None,
            index: None,
            sourcetype: "vigil".into(),
            spool_dir: None,
            spool_max_mib: 1,
            batch_max_events: 1,
            batch_max_bytes: 1 << 20,
            batch_delay_ms: 1,
            timeout_ms: 1000,
            format: Format::Native,
        };
        let e = c.check().unwrap_err().to_string();
        assert!(
            e.starts_with("sink http: url 'xyz' is not a valid URL"),
            "{e}"
        );
        let c = SinkConfig::Syslog {
            address: "smtp://x".into(),
            format: Format::Native,
            facility: Facility::Local0,
            queue_max_mib: 1,
        };
        let e = c.check().unwrap_err().to_string();
        assert!(e.starts_with("sink syslog: address 'smtp://x'"), "{e}");
    }
}
