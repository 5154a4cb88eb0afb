//! The `vigil` command line.
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use vigil::config::{Config, DEFAULT_POLICY};

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
        /// Policy file (TOML); the embedded default policy when neither this nor --watch is given.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Watch this path recursively (repeatable); added to --config's watches.
        #[arg(long = "watch", value_name = "PATH")]
        watch: Vec<PathBuf>,
        /// Append events to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Report every raw change as the kernel saw it (no coalescing).
        #[arg(long)]
        raw: bool,
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
        Command::Run {
            config,
            watch,
            output,
            raw,
        } => run(config, watch, output, raw),
        Command::Hash { sha256, files } => hash(sha256, &files),
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
fn run(
    config: Option<PathBuf>,
    watch: Vec<PathBuf>,
    output: Option<PathBuf>,
    raw: bool,
) -> Result<()> {
    use vigil::pipeline::{emit::Emitter, Settings};
    use vigil::rules::RuleSet;
    use vigil::sink::SinkConfig;
    use vigil::{linux::sensor, policy::Policy};
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
    let settings = Settings::from_config(&cfg, rules);
    sensor::run(sensor::Options {
        policy: Policy::new(cfg),
        emitter: Emitter::new(sinks, host),
        settings,
        ring_buffer_mib,
    })
}

#[cfg(not(target_os = "linux"))]
fn run(_: Option<PathBuf>, _: Vec<PathBuf>, _: Option<PathBuf>, _: bool) -> Result<()> {
    anyhow::bail!("vigil run is only implemented on Linux so far")
}
