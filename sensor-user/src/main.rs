//! The `vigil` command line.
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use vigil::config::{Config, DEFAULT_POLICY};

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
    /// Hash files with the sensor's own hasher (the code `vigil run` uses).
    ///
    /// Prints one `b3sum`-compatible line per file, `<blake3 hex>  <path>`
    /// (`b3sum --check` accepts it). With --sha256 each line has a second
    /// column: `<blake3 hex>  <sha256 hex>  <path>`. Only regular files are
    /// hashed; on errors (which name the file) the other files are still
    /// hashed and the exit status is 1.
    Hash {
        /// Also compute SHA-256, in the same pass (second column).
        #[arg(long)]
        sha256: bool,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
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
    /// Print the embedded default policy.
    Default,
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
            command: ConfigCommand::Default,
        } => {
            print!("{DEFAULT_POLICY}");
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
        Command::Run { args, record } => run(args, record),
        Command::Hash { sha256, files } => hash(sha256, &files),
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
#[cfg(target_os = "linux")]
struct Sensor {
    policy: vigil::policy::Policy,
    settings: vigil::pipeline::Settings,
    emitter: vigil::pipeline::emit::Emitter,
    ring_buffer_mib: u32,
}

#[cfg(target_os = "linux")]
impl Sensor {
    fn prepare(args: RunArgs) -> Result<Sensor> {
        use vigil::pipeline::{emit::Emitter, Settings};
        use vigil::rules::RuleSet;
        use vigil::sink::SinkConfig;
        let RunArgs {
            config,
            watch,
            output,
            raw,
        } = args;
        let mut cfg = match (&config, watch.is_empty()) {
            (Some(path), _) => Config::load(path)?,
            (None, false) => Config::for_paths(&[])?,
            (None, true) => Config::default_policy(),
        };
        cfg.watches.extend(Config::for_paths(&watch)?.watches);
        if raw {
            cfg.coalesce.window_ms = 0;
        }
        let host = cfg.sensor.host.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let mut outputs = cfg.outputs.clone();
        if let Some(path) = output.or(cfg.sensor.output.clone()) {
            outputs.push(SinkConfig::file(path));
        }
        if outputs.is_empty() {
            outputs.push(SinkConfig::Stdout {
                format: Default::default(),
            });
        }
        let sinks = outputs
            .iter()
            .map(|o| vigil::sink::open(o, &host))
            .collect::<Result<Vec<_>>>()?;
        let rules = RuleSet::load(&cfg.rules)?;
        let ring_buffer_mib = cfg.sensor.ring_buffer_mib.unwrap_or(16);
        let policy = vigil::policy::Policy::new(cfg);
        Ok(Sensor {
            ring_buffer_mib,
            settings: Settings::from_policy(&policy),
            emitter: Emitter::new(sinks, rules, host),
            policy,
        })
    }
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
fn run(args: RunArgs, record: Option<PathBuf>) -> Result<()> {
    let s = Sensor::prepare(args)?;
    vigil::linux::sensor::run(vigil::linux::sensor::Options {
        policy: s.policy,
        emitter: s.emitter,
        settings: s.settings,
        ring_buffer_mib: s.ring_buffer_mib,
        record,
    })
}

#[cfg(not(target_os = "linux"))]
fn run(_: RunArgs, _: Option<PathBuf>) -> Result<()> {
    anyhow::bail!("vigil run is only implemented on Linux so far")
}
