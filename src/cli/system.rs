//! `proxima completions`, `proxima man` and `proxima resolver ...`: what fits the binary into the
//! system it is installed on.
//!
//! Completions and man pages are generated from the clap definition of the whole CLI (which lives
//! in `main.rs`, so it is passed in), never written by hand: they cannot fall behind the flags.
//!
//! `proxima resolver setup` routes the node's TLDs, and only those, to its DNS through
//! systemd-resolved (split DNS); `proxima resolver undo` reverses it. The route is a small oneshot
//! unit, `proxima-resolver.service`, that gives a dummy link (`proxima0`) the node as its DNS
//! server and `~TLD` as its routing domains; ARCHITECTURE.md (*Installing on a system*) says why
//! this method and not a `resolved.conf.d` drop-in. Every change is a [`Step`]: `--dry-run`
//! prints the steps, a run carries them out in order and stops at the first that fails, saying
//! what was done and what was not.

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use clap_complete::Shell;
use serde::Serialize;

use crate::config::Config;

/// The binary's name, as completions and man pages call it.
const BIN: &str = "proxima";

/// The unit that `resolver setup` writes, relative to the root.
pub const RESOLVER_UNIT: &str = "etc/systemd/system/proxima-resolver.service";

/// The dummy link that carries the route (systemd-resolved manages no DNS on `lo`).
pub const RESOLVER_LINK: &str = "proxima0";

/// The configuration a packaged node runs with, relative to the root.
pub const SYSTEM_CONFIG: &str = "etc/proxima/proxima.toml";

/// The first line of every unit `resolver setup` writes: `undo` removes only files that carry
/// it, and `setup` overwrites only those.
const MARKER: &str = "# Written by `proxima resolver setup`;";

/// `proxima completions SHELL`.
#[derive(Args, Debug)]
pub struct CompletionsCmd {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `proxima man [--out DIR]`.
#[derive(Args, Debug)]
pub struct ManCmd {
    /// Write proxima.1 and one page per subcommand (proxima-node.1, proxima-name-set.1, ...)
    /// into DIR (created if missing) instead of printing proxima.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `proxima resolver`.
#[derive(Subcommand, Debug)]
pub enum ResolverCommand {
    /// Route the node's TLDs to its DNS through systemd-resolved (split DNS).
    ///
    /// Sends the names under the node's TLDs (`[naming] tlds`, e.g. *.proxima), and only those,
    /// to its DNS (`dns_listen`), keeping every other name as it was: installs and starts
    /// proxima-resolver.service, which gives a dummy link `proxima0` the node as its DNS server
    /// at every boot. Needs root and a running systemd-resolved; `--dry-run` prints the checks,
    /// the unit and the commands without doing anything.
    Setup(SetupArgs),
    /// Reverse `resolver setup`: stop, disable and remove proxima-resolver.service.
    Undo(UndoArgs),
}

/// Flags of `proxima resolver setup`.
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// The node's configuration file, for `dns_listen` and `[naming] tlds`. Default:
    /// /etc/proxima/proxima.toml if it exists, else the built-in defaults (and PROXIMA_*
    /// environment variables), as `proxima node` would use them.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's DNS address, overriding the configuration's `dns_listen`.
    #[arg(long, value_name = "ADDR")]
    pub dns_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Flags of `proxima resolver undo`.
#[derive(Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Flags shared by `setup` and `undo`.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Print the checks, files and commands without doing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Read and write files under DIR instead of / (for tests). Commands still run on the
    /// system they find on PATH.
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

/// Prints the completion script for `shell` of the CLI `cmd` to stdout.
pub fn completions(args: &CompletionsCmd, mut cmd: clap::Command) {
    clap_complete::generate(args.shell, &mut cmd, BIN, &mut io::stdout());
}

/// Prints the man page of `cmd`, or writes every page into `--out`; returns what to print.
pub fn man(args: &ManCmd, cmd: clap::Command) -> Result<String> {
    let Some(dir) = &args.out else {
        let mut page = Vec::new();
        page_of(cmd).render(&mut page)?;
        return String::from_utf8(page).context("the man page is not UTF-8");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // As clap_mangen::generate_to does (no page for `help`; `build` names the subcommand pages
    // proxima-node, proxima-name-set, ...), but keeping the list of files written.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    written.sort();
    let mut out = String::new();
    for path in written {
        out.push_str(&format!("{}\n", path.display()));
    }
    Ok(out)
}

fn page_of(cmd: clap::Command) -> clap_mangen::Man {
    // The source, which man prints in the footer, names the version of every page (clap_mangen
    // knows it only for the top command).
    clap_mangen::Man::new(cmd)
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("Proxima")
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    written.push(page_of(cmd.clone()).generate_to(dir)?);
    Ok(())
}

/// Runs `proxima resolver setup|undo`; prints progress, and on failure what was and was not done.
pub fn resolver(cmd: ResolverCommand) -> Result<ExitCode> {
    let (title, common, plan) = match cmd {
        ResolverCommand::Setup(args) => {
            let route = Route::from_config(&args)?;
            let title = format!(
                "resolver setup: route {} to the node's DNS at {} through systemd-resolved",
                route.tlds_display(),
                route.server()
            );
            let plan = setup_plan(&args.common.root, &route)?;
            (title, args.common, plan)
        }
        ResolverCommand::Undo(args) => {
            let title = "resolver undo: remove the systemd-resolved route of `resolver setup`";
            let plan = undo_plan(&args.common.root)?;
            (title.to_owned(), args.common, plan)
        }
    };
    let mut out = io::stdout().lock();
    if plan.is_empty() {
        writeln!(
            out,
            "{title}\nnothing to undo: {} does not exist",
            common.root.join(RESOLVER_UNIT).display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if common.dry_run {
        writeln!(out, "{title} (dry run: nothing is changed)")?;
        for (i, step) in plan.iter().enumerate() {
            writeln!(out, "{}. {step}", i + 1)?;
            if let Step::Write { contents, .. } = step {
                for line in contents.lines() {
                    writeln!(out, "     | {line}")?;
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{title}")?;
    for (i, step) in plan.iter().enumerate() {
        if let Err(problem) = step.carry_out() {
            drop(out);
            let mut err = io::stderr().lock();
            writeln!(err, "error: step {} failed: {step}\n  {problem}", i + 1)?;
            let changed = plan[..i].iter().any(Step::changes_something);
            if changed {
                writeln!(
                    err,
                    "  the steps before it were done; `proxima resolver undo` reverses them"
                )?;
            } else {
                writeln!(err, "  nothing was changed")?;
            }
            for (j, rest) in plan.iter().enumerate().skip(i + 1) {
                writeln!(err, "  not done: {}. {rest}", j + 1)?;
            }
            return Ok(ExitCode::FAILURE);
        }
        writeln!(out, "ok {}. {step}", i + 1)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where resolved sends the node's TLDs: the node's DNS address and the TLDs it answers for.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The node's DNS address as resolved must dial it (never an unspecified address).
    pub dns: SocketAddr,
    /// The TLDs the node is authoritative for (`[naming] tlds`).
    pub tlds: Vec<String>,
}

/// The flags of `resolver setup` that override the configuration, layered like `proxima node`'s.
#[derive(Serialize)]
struct RouteFlags {
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_listen: Option<SocketAddr>,
}

impl Route {
    fn from_config(args: &SetupArgs) -> Result<Self> {
        let system = args.common.root.join(SYSTEM_CONFIG);
        let file = match &args.config {
            Some(f) => Some(f.clone()),
            None if system.exists() => Some(system),
            None => None,
        };
        let flags = RouteFlags {
            dns_listen: args.dns_listen,
        };
        let config = Config::load(file.as_deref(), &flags).with_context(|| match &file {
            Some(f) => format!("reading {}", f.display()),
            None => "reading the configuration".to_owned(),
        })?;
        Ok(Self::new(config.dns_listen, &config.naming.tlds))
    }

    /// The route to a node listening on `listen` for `tlds`. A node listening on every address
    /// (`0.0.0.0`, `::`) is dialled on loopback.
    pub fn new(listen: SocketAddr, tlds: &[String]) -> Self {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let mut unique: Vec<String> = Vec::new();
        for tld in tlds {
            let tld = tld.trim_matches('.').to_ascii_lowercase();
            if !unique.contains(&tld) {
                unique.push(tld);
            }
        }
        Self {
            dns: SocketAddr::new(ip, listen.port()),
            tlds: unique,
        }
    }

    /// The server as `resolvectl dns` takes it: the port only when it is not 53, so the common
    /// case also works with a systemd older than 246 (which knows no ports).
    pub fn server(&self) -> String {
        match (self.dns.ip(), self.dns.port()) {
            (ip, 53) => ip.to_string(),
            _ => self.dns.to_string(),
        }
    }

    fn tlds_display(&self) -> String {
        let names: Vec<String> = self.tlds.iter().map(|t| format!("*.{t}")).collect();
        names.join(", ")
    }

    /// The unit that applies the route at boot, and again whenever resolved restarts.
    pub fn unit(&self) -> String {
        let domains: Vec<String> = self.tlds.iter().map(|t| format!("~{t}")).collect();
        let domains = domains.join(" ");
        let server = self.server();
        let tlds = self.tlds_display();
        let link = RESOLVER_LINK;
        format!(
            "{MARKER} `proxima resolver undo` stops, disables and removes it.
# Sends DNS queries for {tlds} (and nothing else) to the Proxima node at {server}, through
# systemd-resolved. resolved keeps no DNS settings for `lo`, so the route is set on a dummy link.
[Unit]
Description=Route {tlds} DNS queries to the Proxima node (systemd-resolved split DNS)
Documentation=man:proxima-resolver-setup(1)
Wants=systemd-resolved.service
After=systemd-resolved.service
# Stopped and started again with resolved, so a restarted resolved always has the route.
PartOf=systemd-resolved.service

[Service]
Type=oneshot
RemainAfterExit=yes
# A link left by an earlier start that did not stop cleanly: start from none.
ExecStartPre=-ip link delete {link}
ExecStart=ip link add {link} type dummy
ExecStart=ip link set {link} up
ExecStart=resolvectl dns {link} {server}
ExecStart=resolvectl domain {link} {domains}
# Routing domains only: never a default route for other names.
ExecStart=resolvectl default-route {link} no
# Removing the link removes resolved's settings for it.
ExecStop=ip link delete {link}

[Install]
WantedBy=multi-user.target
"
        )
    }
}

/// One change to the system (or a check before any), printed by `--dry-run` and carried out in
/// order otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// systemd-resolved must be running (`systemctl is-active` says `active`).
    CheckResolved,
    /// These programs must be installed (the unit runs them, or this command does).
    CheckPrograms(Vec<&'static str>),
    /// Write a file (mode 0644), creating its directory.
    Write {
        /// Where.
        path: PathBuf,
        /// What.
        contents: String,
    },
    /// Remove a file.
    Remove(PathBuf),
    /// Run a command; it must exit 0.
    Run(Vec<String>),
}

fn run(args: &[&str]) -> Step {
    Step::Run(args.iter().map(|s| (*s).to_owned()).collect())
}

/// The unit's name, as systemctl takes it.
fn unit_name() -> &'static str {
    Path::new(RESOLVER_UNIT)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("proxima-resolver.service")
}

/// What `resolver setup` does under `root` for `route`.
pub fn setup_plan(root: &Path, route: &Route) -> Result<Vec<Step>> {
    let path = root.join(RESOLVER_UNIT);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.starts_with(MARKER)
    {
        bail!(
            "{} exists and was not written by `proxima resolver setup`: not overwriting it",
            path.display()
        );
    }
    Ok(vec![
        Step::CheckResolved,
        Step::CheckPrograms(vec!["systemctl", "ip", "resolvectl"]),
        Step::Write {
            path,
            contents: route.unit(),
        },
        run(&["systemctl", "daemon-reload"]),
        run(&["systemctl", "enable", unit_name()]),
        // restart, not start: a second setup (say, after dns_listen changed) applies anew.
        run(&["systemctl", "restart", unit_name()]),
    ])
}

/// What `resolver undo` does under `root`: nothing (an empty plan) if setup's unit is absent.
pub fn undo_plan(root: &Path) -> Result<Vec<Step>> {
    let path = root.join(RESOLVER_UNIT);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !existing.starts_with(MARKER) {
        bail!(
            "{} was not written by `proxima resolver setup`: not removing it",
            path.display()
        );
    }
    Ok(vec![
        Step::CheckPrograms(vec!["systemctl"]),
        // Stopping runs the unit's ExecStop: the link goes, and resolved's route with it.
        run(&["systemctl", "disable", "--now", unit_name()]),
        Step::Remove(path),
        run(&["systemctl", "daemon-reload"]),
    ])
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CheckResolved => write!(
                f,
                "check that systemd-resolved is running: systemctl is-active systemd-resolved.service"
            ),
            Step::CheckPrograms(names) => {
                write!(f, "check that these are installed: {}", names.join(" "))
            }
            Step::Write { path, .. } => write!(f, "write {} (mode 0644)", path.display()),
            Step::Remove(path) => write!(f, "remove {}", path.display()),
            Step::Run(argv) => write!(f, "run: {}", argv.join(" ")),
        }
    }
}

impl Step {
    fn changes_something(&self) -> bool {
        matches!(self, Step::Write { .. } | Step::Remove(_) | Step::Run(_))
    }

    /// Does the step; the error says why it failed, in a way an operator can act on.
    fn carry_out(&self) -> Result<(), String> {
        match self {
            Step::CheckResolved => {
                let argv = ["systemctl", "is-active", "systemd-resolved.service"];
                match output(&argv) {
                    Ok(state) if state == "active" => Ok(()),
                    Ok(state) => Err(format!("systemd-resolved is not running: {state}")),
                    Err(e) => Err(format!("systemd-resolved is not running: {e}")),
                }
            }
            Step::CheckPrograms(names) => {
                let missing: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| find_program(n).is_none())
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "not installed: {} (systemctl: the systemd package; resolvectl: \
                         systemd-resolved; ip: iproute2)",
                        missing.join(" ")
                    ))
                }
            }
            Step::Write { path, contents } => write_file(path, contents)
                .map_err(|e| format!("cannot write {}: {}", path.display(), describe_io(&e))),
            Step::Remove(path) => std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove {}: {}", path.display(), describe_io(&e))),
            Step::Run(argv) => {
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                output(&argv).map(|_| ())
            }
        }
    }
}

/// Runs `argv`; its trimmed stdout if it exits 0, else what it said (or why it did not run).
fn output(argv: &[&str]) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let command = argv.join(" ");
    let out = Process::new(program)
        .args(args)
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("`{command}`: {program} is not installed"),
            _ => format!("`{command}` did not run: {e}"),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let said: Vec<&str> = [stdout.as_str(), stderr.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    Err(format!(
        "`{command}` failed ({}){}{}",
        out.status,
        if said.is_empty() { "" } else { ": " },
        said.join("; ")
    ))
}

/// A program on PATH, or in the directories systemd itself searches for a bare `ExecStart=` name
/// (an operator's PATH may lack the sbin ones).
fn find_program(name: &str) -> Option<PathBuf> {
    which::which(name).ok().or_else(|| {
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
    })
}

/// Writes through a temporary file and a rename, so the unit is never seen half written.
fn write_file(path: &Path, contents: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(contents.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn describe_io(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        format!("{e} (run it as root: sudo proxima resolver ...)")
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_dials_loopback_for_an_unspecified_listen_address() {
        let r = Route::new("0.0.0.0:53".parse().unwrap(), &["proxima".into()]);
        assert_eq!(r.server(), "127.0.0.1");
        let r = Route::new("[::]:5300".parse().unwrap(), &["proxima".into()]);
        assert_eq!(r.server(), "[::1]:5300");
        let r = Route::new("127.0.0.1:5300".parse().unwrap(), &["proxima".into()]);
        assert_eq!(r.server(), "127.0.0.1:5300");
    }

    #[test]
    fn unit_routes_every_tld_once_and_is_marked() {
        let r = Route::new(
            "127.0.0.1:53".parse().unwrap(),
            &["proxima".into(), "Lab.".into(), "proxima".into()],
        );
        let unit = r.unit();
        assert!(unit.starts_with(MARKER));
        assert!(unit.contains("ExecStart=resolvectl dns proxima0 127.0.0.1\n"));
        assert!(unit.contains("ExecStart=resolvectl domain proxima0 ~proxima ~lab\n"));
        assert!(unit.contains("ExecStop=ip link delete proxima0\n"));
    }

    #[test]
    fn undo_plans_nothing_without_the_unit_and_refuses_a_foreign_one() {
        let root = tempfile::tempdir().unwrap();
        assert!(undo_plan(root.path()).unwrap().is_empty());
        let path = root.path().join(RESOLVER_UNIT);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "[Unit]\n").unwrap();
        assert!(undo_plan(root.path()).is_err());
        let route = Route::new("127.0.0.1:53".parse().unwrap(), &["proxima".into()]);
        assert!(setup_plan(root.path(), &route).is_err());
    }
}
