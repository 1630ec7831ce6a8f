//! The command line: runc's global flags and commands, each command's
//! arguments in its own file, all thin glue over `lifecycle`.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{logging, Result};

#[derive(Parser)]
#[command(
    name = "berth",
    about = "berth: a fast, runc-compatible OCI container runtime"
)]
#[command(version = concat!("version ", env!("CARGO_PKG_VERSION"), "\nspec: ", berth_spec::oci_version!()), disable_version_flag = true)]
#[command(disable_help_subcommand = true)]
pub struct Cli {
    /// Print the version (runc spells it -v).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Accepted for compatibility with callers that pass it (crun's flag).
    #[arg(long = "log-level", global = true, hide = true)]
    log_level: Option<String>,
    /// Root directory for container state (keep it on a tmpfs; default
    /// /run/berth, or $XDG_RUNTIME_DIR/berth for an unprivileged user).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (cgroupsPath as slice:prefix:name).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Ignore cgroup permission errors (rootless): auto, true or false.
    #[arg(long, default_value = "auto", value_parser = ["auto", "true", "false"])]
    rootless: String,
    /// The CRIU binary for checkpoint/restore (default: criu on PATH).
    #[arg(long, global = true)]
    criu: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container (its process waits for `start`).
    Create(create::Args),
    /// Start the user process of a created container.
    Start(start::Args),
    /// Print a container's state as JSON.
    State(state::Args),
    /// Send a signal to a container's init (default SIGTERM).
    Kill(kill::Args),
    /// Delete a container and the resources it holds.
    Delete(delete::Args),
    /// Create and start a container, then wait for it.
    Run(run::RunArgs),
    /// List containers.
    #[command(alias = "ps-list")]
    List(list::Args),
    /// Write a default config.json.
    Spec(spec::Args),
    /// Run a new process inside a running container.
    Exec(exec::Args),
    /// Print what this runtime supports (runtime-spec features.md).
    Features(features::Args),
    /// Freeze every process of the container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// Change a container's resource limits.
    Update(update::Args),
    /// List the container's processes.
    Ps(ps::Args),
    /// Stream stats and OOM events (or print stats once with --stats).
    Events(events::Args),
    /// Checkpoint a running container with CRIU.
    Checkpoint(checkpoint::Args),
    /// Restore a container from a checkpoint.
    Restore(restore::Args),
}

/// Global options commands need.
pub struct Globals {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `--rootless`: cgroups the caller cannot create may be skipped.
    pub rootless: bool,
    pub criu: Option<String>,
}

/// The command line, as runc reads it: containerd's go-runc passes
/// restore's `--no-subreaper` with one dash (`-no-subreaper`), which runc's
/// CLI library accepts. Only a command line that fails as it is is read
/// again with that flag spelled out.
fn parse(args: Vec<std::ffi::OsString>) -> std::result::Result<Cli, clap::Error> {
    Cli::try_parse_from(&args).or_else(|e| {
        if !args.iter().any(|a| a == "-no-subreaper") {
            return Err(e);
        }
        let fixed = args.iter().map(|a| {
            if a == "-no-subreaper" {
                "--no-subreaper".into()
            } else {
                a.clone()
            }
        });
        Cli::try_parse_from(fixed).map_err(|_| e)
    })
}

/// Entry point: parse, run, report. Exit codes follow runc: 1 for errors
/// and bad flags, 3 for an unknown command.
pub fn main() -> i32 {
    // Commands that fork into a container run from a protected copy of the
    // binary. The re-exec this may take comes first, before the arguments
    // are parsed (the parse would be done twice): any argument naming such
    // a command is enough (`state run` too, harmlessly), and the parse
    // below checks that none was missed.
    let enters_early = std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")));
    let early = enters_early.then(crate::process::host_binary::protect);
    let cli = match parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    // Then note the fds their caller passed, before anything of ours is
    // opened.
    let (enters, passed_fds) = match &cli.command {
        Command::Create(a) => (true, a.preserve_fds),
        Command::Run(a) => (true, a.create.preserve_fds),
        Command::Exec(a) => (true, a.preserve_fds),
        _ => (false, 0),
    };
    let protected = if enters {
        let r = early.unwrap_or_else(crate::process::host_binary::protect);
        let listen = crate::process::launch::listen_fds().unwrap_or(0);
        crate::process::fds::record_inherited(passed_fds.saturating_add(listen));
        r
    } else {
        Ok(())
    };
    let json = cli.log_format == "json";
    if let Err(e) = logging::init(cli.log.as_deref(), json, cli.debug) {
        eprintln!("berth: {e}");
        return 1;
    }
    if let Err(e) = protected {
        logging::error(&e.to_string());
        return 1;
    }
    // spec and features never touch the state root.
    let needs_root = !matches!(cli.command, Command::Spec(_) | Command::Features(_));
    let root = match crate::rootless::state_root(cli.root) {
        Ok(r) => r,
        Err(e) if needs_root => {
            logging::error(&e.to_string());
            return 1;
        }
        Err(_) => PathBuf::new(),
    };
    let rootless = match crate::rootless::cgroups_rootless(&cli.rootless) {
        Ok(r) => r,
        Err(e) => {
            logging::error(&e.to_string());
            return 1;
        }
    };
    let g = Globals {
        root,
        systemd_cgroup: cli.systemd_cgroup,
        rootless,
        criu: cli.criu,
    };
    let (name, id, res): (&str, Option<String>, Result<i32>) = match cli.command {
        Command::Create(a) => ("create", Some(a.id.clone()), create::run(&g, a)),
        Command::Start(a) => ("start", Some(a.id.clone()), start::run(&g, a)),
        Command::State(a) => ("state", Some(a.id.clone()), state::run(&g, a)),
        Command::Kill(a) => ("kill", Some(a.id.clone()), kill::run(&g, a)),
        Command::Delete(a) => ("delete", Some(a.id.clone()), delete::run(&g, a)),
        Command::Run(a) => ("run", Some(a.create.id.clone()), run::run(&g, a)),
        Command::List(a) => ("list", None, list::run(&g, a)),
        Command::Spec(a) => ("spec", None, spec::run(a)),
        Command::Exec(a) => ("exec", Some(a.id.clone()), exec::run(&g, a)),
        Command::Features(a) => ("features", None, features::run(&g, a)),
        Command::Pause(a) => ("pause", Some(a.id.clone()), pause::pause(&g, a)),
        Command::Resume(a) => ("resume", Some(a.id.clone()), pause::resume(&g, a)),
        Command::Update(a) => ("update", Some(a.id.clone()), update::run(&g, a)),
        Command::Ps(a) => ("ps", Some(a.id.clone()), ps::run(&g, a)),
        Command::Events(a) => ("events", Some(a.id.clone()), events::run(&g, a)),
        Command::Checkpoint(a) => ("checkpoint", Some(a.id.clone()), checkpoint::run(&g, a)),
        Command::Restore(a) => ("restore", Some(a.id.clone()), restore::run(&g, a)),
    };
    match res {
        Ok(code) => code,
        // runc's exit code and text for an exec that could not start:
        // callers (containerd's shim, Docker) tell it from the process's
        // own exit status by it.
        Err(e) if name == "exec" => {
            logging::error(&format!("exec failed: {e}"));
            255
        }
        Err(e) => {
            let msg = match id {
                Some(id) => format!("{name} {id}: {e}"),
                None => format!("{name}: {e}"),
            };
            logging::error(&msg);
            1
        }
    }
}

fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            0
        }
        ErrorKind::InvalidSubcommand => {
            let _ = e.print();
            3
        }
        _ => {
            let _ = e.print();
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    fn args(s: &str) -> Vec<std::ffi::OsString> {
        s.split(' ').map(Into::into).collect()
    }

    /// containerd's shim (go-runc): `restore ... -no-subreaper ...`.
    #[test]
    fn restore_accepts_go_runc_one_dash_no_subreaper() {
        let line = "berth restore --image-path /i --detach -no-subreaper --bundle /b id";
        match super::parse(args(line)).unwrap().command {
            super::Command::Restore(r) => assert!(r.no_subreaper),
            _ => panic!("not restore"),
        }
        // Nothing else is read in one-dash form.
        assert!(super::parse(args("berth restore -detach id")).is_err());
        assert!(super::parse(args("berth delete -no-subreaper id")).is_err());
    }
}
