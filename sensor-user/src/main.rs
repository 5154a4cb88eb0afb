//! The `vigil` command line.
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use vigil::config::Config;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "File-integrity monitoring from inside the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch files and print one JSON event per change (NDJSON).
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// Also append every raw ring-buffer record to this file (for `vigil replay`).
        #[arg(long, hide = true)]
        record: Option<PathBuf>,
        /// The store whose journal receives every event ([store] path, else
        /// /var/lib/vigil/vigil.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// The host key that seals the event chain, created on first use
        /// ([integrity] key, else host.key next to the store).
        #[arg(long, value_name = "PATH")]
        key: Option<PathBuf>,
        /// Hook tier for writes, unlink, rename and attribute changes ([sensor]
        /// tier, else auto): auto takes per hook the first of fentry, kprobe,
        /// tracepoint the kernel allows; a forced tier falls back to the syscall
        /// tracepoints only for the hooks it refuses. `vigil doctor` shows the choice.
        #[arg(long, value_enum)]
        tier: Option<vigil::config::Tier>,
    },
    /// What this kernel allows Vigil to hook: BTF, lockdown, each hook and the
    /// tier it would use (or why none), ring buffer, BPF-LSM, and what the
    /// chosen set cannot see. Needs root (it loads and unloads the programs).
    Doctor {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Probe as `vigil run --tier` would.
        #[arg(long, value_enum, default_value = "auto")]
        tier: vigil::config::Tier,
    },
    /// Check a native NDJSON feed (FILE, or - for stdin) against the host
    /// key: edited, missing, reordered or duplicated events, restarts
    /// without a start event, a missing stop event. Prints each finding with
    /// its line and seq, then a summary; exits 1 when the chain is broken.
    Verify {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// The host key: create it, or show its path and id.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Attach a no-op program to each syscall tracepoint `vigil run` uses, say
    /// `ready` and wait for SIGINT/SIGTERM: the tracepoint tier's floor for
    /// `cargo xtask bench overhead`.
    #[command(hide = true)]
    Floor {
        /// On the raw `sys_enter`/`sys_exit` tracepoints instead (every
        /// syscall, no per-syscall trace record).
        #[arg(long)]
        raw: bool,
    },
    /// Feed records saved by `vigil run --record` through the pipeline (no
    /// kernel needed) and print what it measured as JSON.
    #[command(hide = true)]
    Replay {
        #[command(flatten)]
        args: RunArgs,
        /// The record file.
        file: PathBuf,
        /// Replay the records this many times.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Stop after this stage.
        #[cfg(target_os = "linux")]
        #[arg(long, value_enum, default_value = "all")]
        stage: vigil::linux::replay::Stage,
    },
    /// Policy files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Rule files (severity, alerts, MITRE ATT&CK and PCI DSS tags).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The baseline store: init, update, show, accept.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Compare the watched files with the baseline and report every
    /// difference as an event (`source.tier = "scan"`) through the policy's
    /// rules and outputs; each is also appended to the store's journal.
    Scan {
        #[command(flatten)]
        store: StoreArgs,
        /// Only these paths (and what is under them).
        #[arg(long, num_args = 1.., value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Do not hash: size, times, inode and mode decide.
        #[arg(long)]
        metadata_only: bool,
        /// Append events to this file (native NDJSON), in addition to the policy's outputs.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Exit with status 3 when the scan found changes (for cron and
        /// scripts; errors are still 1).
        #[arg(long)]
        exit_code: bool,
    },
    /// Events from the store's journal, filtered (path glob, action, time,
    /// process, user, severity, alert), or raw read-only SQL with --sql.
    Query {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        args: vigil::query::Args,
    },
    /// The comparison report for a period (PCI DSS 11.5.2, weekly): changes,
    /// unattributed changes first, alerts, scans and coverage, sensor gaps.
    Report {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        args: vigil::report::Args,
    },
    /// The Windows service: install (LocalSystem, automatic start, running
    /// `vigil run` with the options given after --), uninstall, start, stop.
    /// Windows only (on Linux, packaging/vigil.service is the systemd unit).
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Hash files with the sensor's own hasher (the code `vigil run` uses).
    ///
    /// Prints one `b3sum`-compatible line per file, `<blake3 hex>  <path>`
    /// (`b3sum --check` accepts it). With --sha256 each line has a second
    /// column: `<blake3 hex>  <sha256 hex>  <path>`. Only regular files are
    /// hashed; on errors (which name the file) the other files are still
    /// hashed and the exit status is 1.
    /// The software inventory (dpkg): list it, or check packaged files
    /// against the checksums dpkg recorded (docs/inventory.md).
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
    Hash {
        /// Also compute SHA-256, in the same pass (second column).
        #[arg(long)]
        sha256: bool,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Where the store is and which policy covers it.
#[derive(clap::Args)]
struct StoreArgs {
    /// Policy file (TOML); the embedded default policy when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A built-in policy instead of --config: default, pci-linux.
    #[arg(long, conflicts_with = "config")]
    profile: Option<String>,
    /// The store (SQLite); `[store] path` in the policy, else /var/lib/vigil/vigil.db.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

/// Where the host key is.
#[derive(clap::Args)]
struct KeyArgs {
    /// The key file; else `[integrity] key` of --config, else host.key next
    /// to the store (--db, `[store] path`, /var/lib/vigil/vigil.db).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Policy file (TOML) naming the key or the store.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The store the key sits next to.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PackageCommand {
    /// Print the installed packages: name, version, architecture, state.
    List {
        /// dpkg's status file.
        #[arg(long, value_name = "PATH", default_value = vigil::inventory::dpkg::DEFAULT_STATUS)]
        status: PathBuf,
    },
    /// Check files against the md5 their package recorded (info/PKG.md5sums,
    /// or the Conffiles field). One line per file: verdict (match, mismatch,
    /// missing, no_checksum, not_packaged), package, path. Without PATH,
    /// every file of every package, printing only those that do not match.
    /// Exit status 1 when a file is mismatched or missing.
    Verify {
        /// dpkg's status file (info/ is next to it).
        #[arg(long, value_name = "PATH", default_value = vigil::inventory::dpkg::DEFAULT_STATUS)]
        status: PathBuf,
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create the host key (32 random bytes, mode 0600) if it does not exist.
    Init {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Print the key's path and id (never the key).
    Show {
        #[command(flatten)]
        key: KeyArgs,
    },
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Record the state and hashes of every watched file (a parallel walk).
    Init {
        #[command(flatten)]
        store: StoreArgs,
        /// Re-baseline even if the store already holds a baseline.
        #[arg(long)]
        force: bool,
    },
    /// Re-baseline: record the current state of every watched file and drop
    /// rows of files that are gone (recorded in `scans` as kind `update`).
    Update {
        #[command(flatten)]
        store: StoreArgs,
        /// Only these paths (and what is under them).
        #[arg(long, num_args = 1.., value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Check the MAC of every baseline row under the host key; lists the
    /// rows that fail and exits 1 if any does.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a path's baseline row and the accepts recorded for it.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        path: PathBuf,
        /// As JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Bless an authorized change: PATH (its current state) or CHANGE-ID (a
    /// journal sequence number: the state that change recorded). Who, when
    /// and why are recorded in `accepts`.
    Accept {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "PATH|CHANGE-ID")]
        target: String,
        /// Why (a change ticket, for example).
        #[arg(long, required = true)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Register the service; arguments after `--` go to `vigil run`
    /// (e.g. `-- --config C:\ProgramData\Vigil\policy.toml`).
    Install {
        #[arg(last = true, value_name = "RUN-ARGS")]
        run_args: Vec<std::ffi::OsString>,
    },
    /// Stop (if running) and delete the service.
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the running service.
    Stop,
    /// What the service control manager starts (not for consoles).
    #[command(hide = true)]
    Run {
        #[command(flatten)]
        args: RunArgs,
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long, value_name = "PATH")]
        key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files together with the built-in rules; errors name the line and column.
    Check { files: Vec<PathBuf> },
    /// Print the built-in rules.
    Default,
}

/// What `run` and `replay` share: the policy, its overrides, the output.
#[derive(clap::Args)]
struct RunArgs {
    /// Policy file (TOML); the embedded default policy when neither this nor --watch is given.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A built-in policy instead of --config: default, pci-linux.
    #[arg(long, conflicts_with = "config")]
    profile: Option<String>,
    /// Watch this path recursively (repeatable); added to --config's watches.
    #[arg(long = "watch", value_name = "PATH")]
    watch: Vec<PathBuf>,
    /// Append events to this file (native NDJSON), in addition to the policy's outputs.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Report every raw change as the kernel saw it (no coalescing).
    #[arg(long)]
    raw: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a policy file; errors name the line and column.
    Check { file: PathBuf },
    /// Print the embedded default policy, or another built-in profile.
    Default {
        /// default, pci-linux.
        #[arg(long, default_value = "default")]
        profile: String,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main(Cli::parse()) {
        eprintln!("vigil: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let c = Config::load(&file)?;
            let rules = vigil::rules::RuleSet::load(&c.rules)?;
            println!(
                "{}: ok ({} watched paths, {} rules, {} outputs)",
                file.display(),
                c.watches.len(),
                rules.len(),
                c.outputs.len().max(1)
            );
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Default { profile },
        } => {
            print!("{}", Config::profile_text(&profile)?);
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::Check { files },
        } => {
            let rules = vigil::rules::RuleSet::load(&files)?;
            println!("ok ({} rules, built-in included)", rules.len());
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::Default,
        } => {
            print!("{}", vigil::rules::DEFAULT_RULES);
            Ok(())
        }
        Command::Run {
            args,
            record,
            db,
            key,
            tier,
        } => run(args, record, db, key, tier),
        #[cfg(target_os = "linux")]
        Command::Doctor { json, tier } => vigil::linux::doctor::run(json, tier),
        #[cfg(not(target_os = "linux"))]
        Command::Doctor { .. } => anyhow::bail!("vigil doctor is only implemented on Linux so far"),
        Command::Verify { file, key } => verify(&file, key),
        Command::Key { command } => key_command(command),
        Command::Hash { sha256, files } => hash(sha256, &files),
        Command::Package {
            command: PackageCommand::List { status },
        } => vigil::inventory::list(&status, &mut std::io::stdout().lock()),
        Command::Package {
            command: PackageCommand::Verify { status, paths },
        } => {
            let bad =
                vigil::inventory::verify_files(&status, &paths, &mut std::io::stdout().lock())?;
            if bad > 0 {
                eprintln!("vigil: {bad} packaged files do not match their recorded checksum or are missing");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Query { store, args } => {
            let (db, _) = read_store(&store)?;
            vigil::query::run(&db, &args, &mut std::io::stdout().lock())
        }
        Command::Report { store, args } => {
            let (db, cfg) = read_store(&store)?;
            let host = cfg.sensor.host.unwrap_or_else(vigil::report::local_host);
            vigil::report::run(&db, &host, &args)
        }
        Command::Service { command } => service(command),
        Command::Baseline { command } => baseline(command),
        Command::Scan {
            store,
            paths,
            metadata_only,
            output,
            exit_code,
        } => {
            let changes = scan(store, paths, metadata_only, output)?;
            if exit_code && changes > 0 {
                std::process::exit(3);
            }
            Ok(())
        }
        #[cfg(target_os = "linux")]
        Command::Floor { raw } => {
            let (_ebpf, n) = vigil::linux::loader::attach_floor(raw)?;
            let kind = if raw { "raw" } else { "syscall" };
            println!("ready: a no-op program on {n} {kind} tracepoints");
            wait_for_termination()
        }
        #[cfg(not(target_os = "linux"))]
        Command::Floor { .. } => anyhow::bail!("vigil floor is only implemented on Linux"),
        #[cfg(target_os = "linux")]
        Command::Replay {
            args,
            file,
            repeat,
            stage,
        } => {
            let records = vigil::linux::replay::read_records(&file)?;
            let s = Sensor::prepare(args)?;
            let stats = vigil::linux::replay::replay(
                &records, repeat, stage, s.policy, s.settings, s.emitter,
            )?;
            println!("{}", serde_json::to_string(&stats)?);
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        Command::Replay { .. } => anyhow::bail!("vigil replay is only implemented on Linux so far"),
    }
}

/// A policy made ready to run: what `run` and `replay` start from.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Sensor {
    policy: vigil::policy::Policy,
    settings: vigil::pipeline::Settings,
    emitter: vigil::pipeline::emit::Emitter,
}

/// A sensor before its outputs are opened: `vigil run` attaches its hooks
/// and drops privileges in between (no sink thread may start before that).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Plan {
    policy: vigil::policy::Policy,
    settings: vigil::pipeline::Settings,
    outputs: Vec<vigil::sink::SinkConfig>,
    rules: vigil::rules::RuleSet,
    host: String,
    ring_buffer_mib: u32,
    tier: Option<vigil::config::Tier>,
}

impl Plan {
    /// Opens the outputs.
    fn open(self) -> Result<Sensor> {
        let sinks = self
            .outputs
            .iter()
            .map(|o| vigil::sink::open(o, &self.host))
            .collect::<Result<Vec<_>>>()?;
        Ok(Sensor {
            settings: self.settings,
            emitter: vigil::pipeline::emit::Emitter::new(sinks, self.rules, self.host),
            policy: self.policy,
        })
    }
}

impl Sensor {
    fn prepare(args: RunArgs) -> Result<Sensor> {
        Sensor::plan(args)?.open()
    }

    fn plan(args: RunArgs) -> Result<Plan> {
        use vigil::pipeline::Settings;
        use vigil::rules::RuleSet;
        use vigil::sink::SinkConfig;
        let RunArgs {
            config,
            profile,
            watch,
            output,
            raw,
        } = args;
        let mut cfg = match (&config, &profile, watch.is_empty()) {
            (Some(path), _, _) => Config::load(path)?,
            (None, Some(name), _) => Config::profile(name)?,
            (None, None, false) => Config::for_paths(&[])?,
            (None, None, true) => Config::default_policy(),
        };
        cfg.watches.extend(Config::for_paths(&watch)?.watches);
        if raw {
            cfg.coalesce.window_ms = 0;
        }
        let host = cfg.sensor.host.clone().unwrap_or_else(vigil::os::host_name);
        let mut outputs = cfg.outputs.clone();
        if let Some(path) = output.or(cfg.sensor.output.clone()) {
            outputs.push(SinkConfig::file(path));
        }
        if outputs.is_empty() {
            outputs.push(SinkConfig::Stdout {
                format: Default::default(),
            });
        }
        let rules = RuleSet::load(&cfg.rules)?;
        let ring_buffer_mib = cfg.sensor.ring_buffer_mib.unwrap_or(16);
        let tier = cfg.sensor.tier;
        let policy = vigil::policy::Policy::new(cfg);
        Ok(Plan {
            ring_buffer_mib,
            tier,
            settings: Settings::from_policy(&policy),
            outputs,
            rules,
            host,
            policy,
        })
    }
}

/// For the commands that only read the store: its path (--db, else the
/// policy's `[store] path`, else the default) and the policy.
fn read_store(store: &StoreArgs) -> Result<(PathBuf, Config)> {
    let cfg = match &store.config {
        Some(p) => Config::load(p)?,
        None => Config::default_policy(),
    };
    let db = store.db.clone().or_else(|| cfg.store.path.clone());
    Ok((
        db.unwrap_or_else(|| PathBuf::from(vigil::store::DEFAULT_PATH)),
        cfg,
    ))
}

/// The store named by --db, else by the policy, else the default.
fn store_path(db: Option<PathBuf>, cfg: &Config) -> PathBuf {
    db.or_else(|| cfg.store.path.clone())
        .unwrap_or_else(|| PathBuf::from(vigil::store::DEFAULT_PATH))
}

fn open_at(path: &std::path::Path) -> Result<vigil::store::Store> {
    Ok(vigil::store::Store::open(path)?)
}

/// Opens the store with its baseline rows sealed and checked under the host
/// key (created on first use, as `vigil run` does).
fn open_store(db: Option<PathBuf>, cfg: &Config) -> Result<vigil::store::Store> {
    use vigil::integrity::{key_path, HostKey};
    let path = store_path(db, cfg);
    let store = open_at(&path)?;
    let key_file = key_path(None, cfg, Some(&path));
    let (key, created) = HostKey::load_or_create(&key_file)?;
    if created {
        eprintln!(
            "vigil: created host key {} (key id {})",
            key_file.display(),
            key.id()
        );
    }
    Ok(store.with_row_mac(key.bytes()))
}

fn load_policy(store: &StoreArgs) -> Result<vigil::policy::Policy> {
    let cfg = match (&store.config, &store.profile) {
        (Some(p), _) => Config::load(p)?,
        (None, Some(name)) => Config::profile(name)?,
        (None, None) => Config::default_policy(),
    };
    Ok(vigil::policy::Policy::new(cfg))
}

/// Absolute, normalized `--paths`.
fn absolute(paths: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir()?;
    Ok(paths
        .into_iter()
        .map(|p| vigil::config::normalize(&cwd.join(p)))
        .collect())
}

fn baseline(command: BaselineCommand) -> Result<()> {
    use vigil::scan::{self, WalkOptions};
    match command {
        BaselineCommand::Init { store, force } => {
            let policy = load_policy(&store)?;
            let db = open_store(store.db, &policy.config)?;
            let n = db.file_count()?;
            if n > 0 && !force {
                anyhow::bail!(
                    "{}: already holds a baseline of {n} files: use `vigil baseline update` (or init --force)",
                    db.path().display()
                );
            }
            let s = scan::baseline(&db, &policy, &WalkOptions::from_policy(&policy), "init")?;
            eprintln!(
                "vigil: baseline {}: {} files recorded ({} MiB hashed), {} errors, in {}",
                s.scan_id,
                s.files_seen,
                s.bytes_hashed >> 20,
                s.errors,
                db.path().display()
            );
            registry_baseline(&db, &policy)
        }
        BaselineCommand::Update { store, paths } => {
            let policy = load_policy(&store)?;
            let db = open_store(store.db, &policy.config)?;
            let mut opts = WalkOptions::from_policy(&policy);
            opts.only = absolute(paths)?;
            let s = scan::baseline(&db, &policy, &opts, "update")?;
            eprintln!(
                "vigil: baseline update {}: {} files, {} rows changed, {} errors",
                s.scan_id, s.files_seen, s.changes, s.errors
            );
            if opts.only.is_empty() {
                registry_baseline(&db, &policy)?;
            }
            Ok(())
        }
        BaselineCommand::Verify { store } => {
            let policy = load_policy(&store)?;
            let db = open_store(store.db, &policy.config)?;
            let (n, bad) = db.verify_rows()?;
            for t in &bad {
                let why = match t.reason {
                    "missing" => "no MAC: removed, or recorded before row MACs",
                    _ => "MAC mismatch: changed or forged after it was recorded",
                };
                println!("{}: {why}", t.path);
            }
            if !bad.is_empty() {
                anyhow::bail!(
                    "{}: {} of {n} baseline rows fail their MAC: investigate, then `vigil baseline update` re-records and re-seals them",
                    db.path().display(),
                    bad.len()
                );
            }
            eprintln!(
                "vigil: {}: all {n} baseline rows verify",
                db.path().display()
            );
            Ok(())
        }
        BaselineCommand::Show { store, path, json } => {
            let policy = load_policy(&store)?;
            let db = open_store(store.db, &policy.config)?;
            let path = absolute(vec![path])?.remove(0).display().to_string();
            let row = db.get_file(&path)?;
            let accepts = db.accepts_of(&path)?;
            let Some(row) = row else {
                anyhow::bail!("{path}: not in the baseline ({})", db.path().display());
            };
            if json {
                let v = serde_json::json!({
                    "path": row.path,
                    "state": row.state,
                    "watch": row.watch,
                    "verified_at": row.verified_at,
                    "updated_at": row.updated_at,
                    "accepts": accepts.iter().map(|a| serde_json::json!({
                        "id": a.id, "time": a.time, "who": a.who,
                        "journal_seq": a.journal_seq, "reason": a.reason,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let s = &row.state;
                let mut lines: Vec<(&str, String)> = vec![
                    ("path", row.path.clone()),
                    ("type", s.file_type.to_string()),
                    ("size", s.size.to_string()),
                    ("mode", s.mode.clone()),
                    ("uid", s.uid.to_string()),
                    ("gid", s.gid.to_string()),
                    ("mtime", s.mtime.clone()),
                    ("ctime", s.ctime.clone()),
                    ("inode", s.inode.to_string()),
                    ("nlink", s.nlink.to_string()),
                ];
                if let Some(t) = &s.link_target {
                    lines.push(("link_target", t.clone()));
                }
                for (k, v) in &s.xattrs {
                    lines.push(("xattr", format!("{k}={v}")));
                }
                for (k, v) in &s.hashes {
                    lines.push((if k == "blake3" { "blake3" } else { "sha256" }, v.clone()));
                }
                if let Some(n) = &s.hash_note {
                    lines.push(("hash_note", n.clone()));
                }
                lines.push(("watch", row.watch.clone().unwrap_or_default()));
                lines.push(("verified_at", row.verified_at.clone()));
                lines.push(("updated_at", row.updated_at.clone()));
                for a in &accepts {
                    let change = a
                        .journal_seq
                        .map(|s| format!(" (change {s})"))
                        .unwrap_or_default();
                    lines.push((
                        "accepted",
                        format!("{} by {}{change}: {}", a.time, a.who, a.reason),
                    ));
                }
                for (k, v) in lines {
                    println!("{k:<12} {v}");
                }
            }
            Ok(())
        }
        BaselineCommand::Accept {
            store,
            target,
            reason,
        } => {
            let policy = load_policy(&store)?;
            let db = open_store(store.db, &policy.config)?;
            let who = vigil::store::Who::current();
            let opts = WalkOptions::from_policy(&policy);
            let a = scan::accept(&db, &policy, &opts, &target, &reason, &who)?;
            let what = if a.after.is_some() {
                "recorded"
            } else {
                "removed from the baseline"
            };
            eprintln!(
                "vigil: accept {}: {} {what} by {}: {reason}",
                a.id, a.path, who.name
            );
            if a.changed_since {
                eprintln!(
                    "vigil: warning: {} changed again after change {}; the next scan reports that newer change",
                    a.path,
                    a.journal_seq.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

fn scan(
    store: StoreArgs,
    paths: Vec<PathBuf>,
    metadata_only: bool,
    output: Option<PathBuf>,
) -> Result<u64> {
    use vigil::scan::WalkOptions;
    let mut s = Sensor::prepare(RunArgs {
        config: store.config,
        profile: store.profile,
        watch: Vec::new(),
        output,
        raw: false,
    })?;
    let db = open_store(store.db, &s.policy.config)?;
    let mut opts = WalkOptions::from_policy(&s.policy);
    opts.only = absolute(paths)?;
    opts.metadata_only = metadata_only;
    let r = vigil::scan::scan(
        &db,
        &s.policy,
        &mut s.emitter,
        &opts,
        &vigil::scan::ScanRequest::baseline("scan"),
    );
    let reg = match (&r, opts.only.is_empty()) {
        (Ok(_), true) => registry_scan(&db, &s.policy, &mut s.emitter),
        _ => Ok(0),
    };
    let closed = s.emitter.close();
    let sum = r?;
    let reg = reg?;
    closed?;
    eprintln!(
        "vigil: scan {}: {} files, {} changes ({} unattributed), {} errors",
        sum.scan_id, sum.files_seen, sum.changes, sum.unattributed, sum.errors
    );
    Ok(sum.changes + reg)
}

/// Records the policy's registry values (Windows); elsewhere says that
/// `[[registry]]` watches are not read.
fn registry_baseline(db: &vigil::store::Store, policy: &vigil::policy::Policy) -> Result<()> {
    #[cfg(windows)]
    {
        let wpol = vigil::registry::windows_policy(&policy.config)?;
        let n = vigil::registry::baseline(db, &wpol, &vigil::registry::WinTree)?;
        eprintln!(
            "vigil: registry baseline: {n} values recorded under {} keys",
            wpol.registry.len()
        );
        if policy.config.inventory.enabled {
            let scm = scm_statuses();
            let (sw, svc) =
                vigil::inventory::win::record(db, &vigil::registry::WinTree, scm.as_ref())?;
            eprintln!(
                "vigil: software inventory: {sw} entries of the Uninstall keys; services: {svc} recorded{}",
                if scm.is_some() { " with their running states" } else { " (running states unknown)" }
            );
        }
    }
    #[cfg(not(windows))]
    {
        let _ = db;
        if !policy.config.registry.is_empty() {
            eprintln!("vigil: [[registry]] watches are read on Windows only: ignored here");
        }
    }
    Ok(())
}

/// Compares the registry values with their baseline (Windows); the number
/// of findings.
fn registry_scan(
    db: &vigil::store::Store,
    policy: &vigil::policy::Policy,
    out: &mut dyn vigil::scan::Findings,
) -> Result<u64> {
    #[cfg(windows)]
    {
        let wpol = vigil::registry::windows_policy(&policy.config)?;
        let mut changes = 0;
        if !wpol.registry.is_empty() {
            let (id, s) =
                vigil::registry::scan_recorded(db, &wpol, &vigil::registry::WinTree, out, "scan")?;
            eprintln!(
                "vigil: registry scan {id}: {} values, {} changes (unattributed)",
                s.values_seen, s.changes
            );
            changes += s.changes;
        }
        if policy.config.inventory.enabled {
            let scm = scm_statuses();
            let n = vigil::inventory::win::scan_recorded(
                db,
                &vigil::registry::WinTree,
                scm.as_ref(),
                out,
                "scan",
            )?;
            match n {
                Some(n) => {
                    eprintln!("vigil: software and services: {n} changes (unattributed)");
                    changes += n;
                }
                None => eprintln!(
                    "vigil: software and services were never recorded in {}: not compared; `vigil baseline update` records them",
                    db.path().display()
                ),
            }
        }
        Ok(changes)
    }
    #[cfg(not(windows))]
    {
        let _ = (db, policy, out);
        Ok(0)
    }
}

/// The SCM's running states; None (said on stderr) when it does not answer.
#[cfg(windows)]
fn scm_statuses() -> Option<std::collections::BTreeMap<String, vigil::inventory::win::ScmStatus>> {
    vigil::windows::scm::statuses()
        .map_err(|e| eprintln!("vigil: {e}"))
        .ok()
}

/// `vigil service ...`: the Windows service control manager.
#[cfg(windows)]
fn service(command: ServiceCommand) -> Result<()> {
    use vigil::windows::service;
    match command {
        ServiceCommand::Install { run_args } => service::install(&run_args),
        ServiceCommand::Uninstall => service::uninstall(),
        ServiceCommand::Start => service::start(),
        ServiceCommand::Stop => service::stop(),
        ServiceCommand::Run { args, db, key } => {
            service::dispatch(Box::new(move |stop| run_until(args, db, key, stop)))
        }
    }
}

#[cfg(not(windows))]
fn service(_: ServiceCommand) -> Result<()> {
    anyhow::bail!(
        "vigil service is for Windows only; on Linux, install packaging/vigil.service (systemd) and use systemctl enable --now vigil"
    )
}

/// `vigil hash`: `hash::hash_file`, exactly as the pipeline calls it, on each file.
fn hash(sha256: bool, files: &[PathBuf]) -> Result<()> {
    use std::io::Write;
    use vigil::hash::{hash_file, HashPolicy};
    let policy = HashPolicy { max_size: u64::MAX };
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for path in files {
        let hashed = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => hash_file(path, m.len(), sha256, 0, &policy),
            Ok(_) => Default::default(),
            Err(e) => {
                eprintln!("vigil: {}: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let Some(b3) = hashed.hashes.get("blake3") else {
            let why = hashed.note.as_deref().unwrap_or("not a regular file");
            eprintln!("vigil: {}: {why}", path.display());
            failed += 1;
            continue;
        };
        // As b3sum (and coreutils) do: a name with a backslash or a newline is
        // escaped and the line starts with a backslash.
        let name = path.to_string_lossy();
        let escaped = name.contains(['\\', '\n']);
        let name = name.replace('\\', "\\\\").replace('\n', "\\n");
        let prefix = if escaped { "\\" } else { "" };
        match hashed.hashes.get("sha256") {
            Some(s) => writeln!(out, "{prefix}{b3}  {s}  {name}")?,
            None => writeln!(out, "{prefix}{b3}  {name}")?,
        }
    }
    out.flush()?;
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be hashed", files.len());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn run(
    args: RunArgs,
    record: Option<PathBuf>,
    db: Option<PathBuf>,
    key: Option<PathBuf>,
    tier: Option<vigil::config::Tier>,
) -> Result<()> {
    use vigil::integrity::{key_path, HostKey};
    let plan = Sensor::plan(args)?;
    let tier = tier.or(plan.tier).unwrap_or_default();
    // Not root, no BTF: say so before anything else (the key directory
    // would be the first thing to fail).
    vigil::linux::loader::preflight()?;
    // No chain without a sound key: refuse to start rather than emit a feed
    // nobody can verify.
    let key_file = key_path(key, &plan.policy.config, db.as_deref());
    let (key, created) = HostKey::load_or_create(&key_file)?;
    if created {
        eprintln!(
            "vigil: created host key {} (key id {})",
            key_file.display(),
            key.id()
        );
    }
    let heartbeat = plan
        .policy
        .config
        .sensor
        .heartbeat_s
        .unwrap_or(vigil::config::DEFAULT_HEARTBEAT_S);
    let db_path = store_path(db, &plan.policy.config);
    let started = chrono::Utc::now();
    let store = open_at(&db_path);
    // What the previous run left, read before this run's start event lands.
    let previous = match &store {
        Ok(st) => vigil::daemon::Previous::read(st).unwrap_or_else(|e| {
            tracing::warn!("no downtime report: {e:#}");
            None
        }),
        Err(_) => None,
    };
    let inv = &plan.policy.config.inventory;
    let services = (inv.enabled && inv.daemons).then(|| vigil::inventory::systemd_bus::Options {
        bus: inv.systemd_bus.clone(),
        types: inv.systemd_unit_types.clone(),
        host: plan.host.clone(),
        store: store.is_ok().then(|| db_path.clone()),
        invocations: Default::default(),
    });
    let scans = store.is_ok().then(|| vigil::daemon::Options {
        policy: plan.policy.clone(),
        store: db_path,
        host: plan.host.clone(),
        started,
        previous,
        row_key: Some(*key.bytes()),
    });
    // Hooks attached and privileges dropped before the outputs start their
    // threads (capabilities are per thread).
    let attached = vigil::linux::sensor::attach(&plan.policy, plan.ring_buffer_mib, tier)?;
    let s = plan.open()?;
    vigil::linux::sensor::run(
        attached,
        vigil::linux::sensor::Options {
            policy: s.policy,
            emitter: s.emitter.with_journal(store).with_chain(key),
            settings: s.settings,
            record,
            scans,
            services,
            heartbeat: std::time::Duration::from_secs(heartbeat),
        },
    )
}

/// `vigil run` on Windows: ETW through the shared pipeline, journal and
/// chain as on Linux; no --record (eBPF records) and no --tier.
#[cfg(windows)]
fn run(
    args: RunArgs,
    record: Option<PathBuf>,
    db: Option<PathBuf>,
    key: Option<PathBuf>,
    tier: Option<vigil::config::Tier>,
) -> Result<()> {
    if record.is_some() || tier.is_some() {
        anyhow::bail!("--record and --tier are eBPF options: Linux only");
    }
    run_until(args, db, key, Default::default())
}

/// What `vigil run` and the service run on Windows, until `stop` is set
/// (or Ctrl-C).
#[cfg(windows)]
fn run_until(
    args: RunArgs,
    db: Option<PathBuf>,
    key: Option<PathBuf>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    use vigil::integrity::{key_path, HostKey};
    let s = Sensor::prepare(args)?;
    let key_file = key_path(key, &s.policy.config, db.as_deref());
    let (key, created) = HostKey::load_or_create(&key_file)?;
    if created {
        eprintln!(
            "vigil: created host key {} (key id {})",
            key_file.display(),
            key.id()
        );
    }
    let heartbeat = s
        .policy
        .config
        .sensor
        .heartbeat_s
        .unwrap_or(vigil::config::DEFAULT_HEARTBEAT_S);
    let db_path = store_path(db, &s.policy.config);
    let started = chrono::Utc::now();
    let store = open_at(&db_path);
    // What the previous run left, read before this run's start event lands.
    let previous = match &store {
        Ok(st) => vigil::daemon::Previous::read(st).unwrap_or_else(|e| {
            tracing::warn!("no downtime report: {e:#}");
            None
        }),
        Err(_) => None,
    };
    let scans = store.is_ok().then(|| vigil::daemon::Options {
        policy: s.policy.clone(),
        store: db_path.clone(),
        host: s.emitter.host().to_string(),
        started,
        previous,
        row_key: Some(*key.bytes()),
    });
    let has_store = store.is_ok();
    vigil::windows::run(vigil::windows::Options {
        policy: s.policy,
        emitter: s.emitter.with_journal(store).with_chain(key),
        settings: s.settings,
        heartbeat: std::time::Duration::from_secs(heartbeat),
        stop,
        store: has_store.then_some(db_path),
        scans,
    })
}

#[cfg(not(any(target_os = "linux", windows)))]
fn run(
    _: RunArgs,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
    _: Option<vigil::config::Tier>,
) -> Result<()> {
    anyhow::bail!("vigil run needs Linux (eBPF) or Windows (ETW)")
}

/// The key file named by --key, the policy, or the store's place.
fn key_file(args: KeyArgs) -> Result<PathBuf> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default_policy(),
    };
    Ok(vigil::integrity::key_path(
        args.key,
        &cfg,
        args.db.as_deref(),
    ))
}

/// `vigil verify`: exit 0 when the chain holds (warnings allowed), 1 when broken.
fn verify(file: &std::path::Path, key: KeyArgs) -> Result<()> {
    use anyhow::Context;
    use vigil::integrity::{verify::verify, HostKey};
    let key = HostKey::load(&key_file(key)?)?;
    let (name, summary) = if file.as_os_str() == "-" {
        ("-".to_string(), verify(std::io::stdin().lock(), &key))
    } else {
        let f = std::fs::File::open(file)
            .with_context(|| format!("cannot read feed {}", file.display()))?;
        (
            file.display().to_string(),
            verify(std::io::BufReader::new(f), &key),
        )
    };
    let summary = summary.with_context(|| format!("reading {name}"))?;
    print!("{}", summary.render(&name, &key));
    if !summary.ok() {
        std::process::exit(1);
    }
    Ok(())
}

fn key_command(command: KeyCommand) -> Result<()> {
    use vigil::integrity::HostKey;
    match command {
        KeyCommand::Init { key } => {
            let path = key_file(key)?;
            let (k, created) = HostKey::load_or_create(&path)?;
            let what = if created { "created" } else { "exists" };
            println!("{}: {what}, key id {}", path.display(), k.id());
        }
        KeyCommand::Show { key } => {
            let path = key_file(key)?;
            let k = HostKey::load(&path)?;
            println!("{}: key id {}", path.display(), k.id());
        }
    }
    Ok(())
}

/// Blocks until SIGINT or SIGTERM.
#[cfg(target_os = "linux")]
fn wait_for_termination() -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    set.wait()?;
    Ok(())
}
