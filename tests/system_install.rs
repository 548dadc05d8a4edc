//! An install that fits the system, through the real binary: completions and man pages generated
//! from the CLI, `proxima resolver setup|undo` into a temporary root (with stand-in `systemctl`,
//! `ip` and `resolvectl` that log their calls, so the running machine is never touched), and the
//! Debian package: built by `scripts/package` from this test's own binary, listed, installed
//! with dpkg into an empty directory tree, checked by lintian and `systemd-analyze verify`, and
//! purged. A tool these checks need that is missing fails the test with its name
//! (`scripts/install-deps test` installs them all).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_proxima");
const UNIT: &str = "etc/systemd/system/proxima-resolver.service";

/// `proxima ARGS` with no `PROXIMA_*` configuration from the environment.
fn proxima(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PROXIMA_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeds(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn fails(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not run: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded:\n{}",
        text(&out.stdout)
    );
    out
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    for (shell, sign) in [
        ("bash", "_proxima()"),
        ("zsh", "#compdef proxima"),
        ("fish", "complete -c proxima"),
    ] {
        let script = succeeds(&mut proxima(&["completions", shell]));
        assert!(script.contains(sign), "{shell}: no {sign:?}");
        assert!(
            script.contains("resolver"),
            "{shell}: no resolver subcommand"
        );
        assert!(
            script.contains("dns-listen"),
            "{shell}: no --dns-listen flag"
        );
    }

    let page = succeeds(&mut proxima(&["man"]));
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "not roff: {page:.200}"
    );
    assert!(page.contains(".TH proxima 1"), "{page:.300}");
    assert!(page.contains("proxima\\-completions"), "no subcommand list");

    let dir = tempfile::tempdir().unwrap();
    let listed = succeeds(&mut proxima(&[
        "man",
        "--out",
        dir.path().to_str().unwrap(),
    ]));
    for name in [
        "proxima.1",
        "proxima-node.1",
        "proxima-resolver-setup.1",
        "proxima-name-set.1",
    ] {
        let path = dir.path().join(name);
        assert!(path.is_file(), "{name} not written");
        assert!(listed.contains(path.to_str().unwrap()), "{name} not listed");
    }
    // The hidden --root flag stays out of the pages.
    let setup = std::fs::read_to_string(dir.path().join("proxima-resolver-setup.1")).unwrap();
    assert!(setup.contains("dry\\-run") && !setup.contains("\\-\\-root"));
}

/// A directory of stand-ins for systemctl, ip and resolvectl that append their arguments to
/// `calls.log` in it. `systemctl is-active` prints `resolved_state` and exits 0 only when it
/// is `active`; `systemctl VERB` exits 1 for every VERB in `failing`.
struct FakeSystem {
    dir: tempfile::TempDir,
}

impl FakeSystem {
    fn new(resolved_state: &str, failing: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let failing = failing.join(" ");
        let systemctl = format!(
            r#"#!/bin/sh
echo "systemctl $*" >> '{log}'
if [ "$1" = is-active ]; then
  echo '{resolved_state}'
  [ '{resolved_state}' = active ]; exit $?
fi
for verb in {failing}; do
  [ "$1" = "$verb" ] && {{ echo "Job for $2 failed." >&2; exit 1; }}
done
exit 0
"#,
            log = log.display()
        );
        let logger = format!(
            "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> '{}'\n",
            log.display()
        );
        for (name, script) in [
            ("systemctl", systemctl.as_str()),
            ("ip", &logger),
            ("resolvectl", &logger),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir }
    }

    /// `proxima ARGS` with only the stand-ins on PATH.
    fn proxima(&self, args: &[&str]) -> Command {
        let mut cmd = proxima(args);
        cmd.env("PATH", self.dir.path());
        cmd
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A root with the node's configuration at `etc/proxima/proxima.toml`.
fn root_with_config(config: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/proxima");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("proxima.toml"), config).unwrap();
    root
}

#[test]
fn resolver_dry_run_lists_the_checks_the_unit_and_the_commands() {
    let root = root_with_config(
        "dns_listen = \"127.0.0.1:5300\"\n[naming]\ntlds = [\"proxima\", \"lab\"]\n",
    );
    let r = root.path().to_str().unwrap();
    let out = succeeds(&mut proxima(&[
        "resolver",
        "setup",
        "--dry-run",
        "--root",
        r,
    ]));
    let unit = root.path().join(UNIT);
    for want in [
        "route *.proxima, *.lab to the node's DNS at 127.0.0.1:5300".to_owned(),
        "dry run: nothing is changed".to_owned(),
        "1. check that systemd-resolved is running: systemctl is-active systemd-resolved.service"
            .to_owned(),
        "2. check that these are installed: systemctl ip resolvectl".to_owned(),
        format!("3. write {} (mode 0644)", unit.display()),
        "| ExecStart=ip link add proxima0 type dummy".to_owned(),
        "| ExecStart=resolvectl dns proxima0 127.0.0.1:5300".to_owned(),
        "| ExecStart=resolvectl domain proxima0 ~proxima ~lab".to_owned(),
        "| ExecStart=resolvectl default-route proxima0 no".to_owned(),
        "| ExecStop=ip link delete proxima0".to_owned(),
        "4. run: systemctl daemon-reload".to_owned(),
        "5. run: systemctl enable proxima-resolver.service".to_owned(),
        "6. run: systemctl restart proxima-resolver.service".to_owned(),
    ] {
        assert!(out.contains(&want), "dry run lacks {want:?}:\n{out}");
    }
    assert!(!unit.exists(), "a dry run wrote the unit");

    // --dns-listen overrides the file; an unspecified address is dialled on loopback, and
    // port 53 is left implicit.
    let out = succeeds(&mut proxima(&[
        "resolver",
        "setup",
        "--dry-run",
        "--root",
        r,
        "--dns-listen",
        "0.0.0.0:53",
    ]));
    assert!(
        out.contains("| ExecStart=resolvectl dns proxima0 127.0.0.1\n"),
        "{out}"
    );

    // Nothing set up: undo has nothing to do, dry run or not.
    for args in [
        &["resolver", "undo", "--root", r][..],
        &["resolver", "undo", "--dry-run", "--root", r],
    ] {
        let out = succeeds(&mut proxima(args));
        assert!(out.contains("nothing to undo"), "{out}");
    }
}

#[test]
fn resolver_setup_then_undo_with_a_running_resolved() {
    // The packaged configuration: the route goes to port 53.
    let shipped = std::fs::read_to_string(repo().join("packaging/proxima.toml")).unwrap();
    let root = root_with_config(&shipped);
    let r = root.path().to_str().unwrap();
    let system = FakeSystem::new("active", &[]);
    let unit = root.path().join(UNIT);

    let out = succeeds(&mut system.proxima(&["resolver", "setup", "--root", r]));
    assert!(
        out.contains("ok 6. run: systemctl restart proxima-resolver.service"),
        "{out}"
    );
    let written = std::fs::read_to_string(&unit).unwrap();
    assert!(written.contains("ExecStart=resolvectl dns proxima0 127.0.0.1\n"));
    assert!(written.contains("ExecStart=resolvectl domain proxima0 ~proxima\n"));
    let mode = std::fs::metadata(&unit).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert_eq!(
        system.calls(),
        [
            "systemctl is-active systemd-resolved.service",
            "systemctl daemon-reload",
            "systemctl enable proxima-resolver.service",
            "systemctl restart proxima-resolver.service",
        ]
    );

    // Again (say, after dns_listen changed): the unit is rewritten and applied anew.
    succeeds(&mut system.proxima(&[
        "resolver",
        "setup",
        "--root",
        r,
        "--dns-listen",
        "127.0.0.1:5353",
    ]));
    let written = std::fs::read_to_string(&unit).unwrap();
    assert!(written.contains("ExecStart=resolvectl dns proxima0 127.0.0.1:5353\n"));

    let before = system.calls().len();
    let out = succeeds(&mut system.proxima(&["resolver", "undo", "--root", r]));
    assert!(out.contains(&format!("remove {}", unit.display())), "{out}");
    assert!(!unit.exists(), "undo left the unit");
    assert!(root.path().join("etc/systemd/system").is_dir());
    assert_eq!(
        system.calls()[before..],
        [
            "systemctl disable --now proxima-resolver.service",
            "systemctl daemon-reload",
        ]
    );
    let out = succeeds(&mut system.proxima(&["resolver", "undo", "--root", r]));
    assert!(out.contains("nothing to undo"), "{out}");

    // A unit of the same name that setup did not write is neither replaced nor removed.
    std::fs::write(&unit, "[Unit]\nDescription=someone else's\n").unwrap();
    for verb in ["setup", "undo"] {
        let out = fails(&mut system.proxima(&["resolver", verb, "--root", r]));
        assert!(text(&out.stderr).contains("not written by `proxima resolver setup`"));
    }
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("someone else's")
    );
}

#[test]
fn resolver_setup_fails_loudly_without_resolved() {
    let root = root_with_config("dns_listen = \"127.0.0.1:5300\"\n");
    let r = root.path().to_str().unwrap();
    let unit = root.path().join(UNIT);

    // resolved installed but stopped: nothing is changed, and every step left is named.
    let system = FakeSystem::new("inactive", &[]);
    let out = fails(&mut system.proxima(&["resolver", "setup", "--root", r]));
    let err = text(&out.stderr);
    for want in [
        "step 1 failed: check that systemd-resolved is running",
        "systemd-resolved is not running: `systemctl is-active systemd-resolved.service` failed",
        "inactive",
        "nothing was changed",
        "not done: 3. write",
        "not done: 6. run: systemctl restart proxima-resolver.service",
    ] {
        assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    }
    assert!(!unit.exists());
    assert_eq!(
        system.calls(),
        ["systemctl is-active systemd-resolved.service"]
    );

    // No systemd at all (nothing on PATH).
    let empty = tempfile::tempdir().unwrap();
    let out = fails(proxima(&["resolver", "setup", "--root", r]).env("PATH", empty.path()));
    let err = text(&out.stderr);
    assert!(
        err.contains("systemd-resolved is not running: `systemctl is-active systemd-resolved.service`: systemctl is not installed"),
        "{err}"
    );
    assert!(!unit.exists());

    // The unit fails to start (resolvectl finds no resolved): setup says which step failed,
    // what was done before it, and undo reverses that.
    let system = FakeSystem::new("active", &["restart"]);
    let out = fails(&mut system.proxima(&["resolver", "setup", "--root", r]));
    let err = text(&out.stderr);
    assert!(
        err.contains("step 6 failed: run: systemctl restart proxima-resolver.service"),
        "{err}"
    );
    assert!(
        err.contains("Job for proxima-resolver.service failed."),
        "{err}"
    );
    assert!(
        err.contains("`proxima resolver undo` reverses them"),
        "{err}"
    );
    assert!(unit.exists());
    succeeds(&mut system.proxima(&["resolver", "undo", "--root", r]));
    assert!(!unit.exists());
}

#[test]
fn shipped_configuration_is_valid_for_a_system_node() {
    let path = repo().join("packaging/proxima.toml");
    let shown = succeeds(&mut proxima(&[
        "config",
        "show",
        "--config",
        path.to_str().unwrap(),
    ]));
    for want in [
        "data_dir = \"/var/lib/proxima\"",
        "dns_listen = \"127.0.0.1:53\"",
        "admin_listen = \"127.0.0.1:7300\"",
    ] {
        assert!(shown.contains(want), "config show lacks {want:?}:\n{shown}");
    }
}

/// `tool` on PATH (with the sbin directories), or a failure naming it and how to get it.
fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{tool} is not installed; `scripts/install-deps test` installs it")
        })
}

/// Runs `program args`, returning (success, stdout + stderr).
fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} did not run: {e}", program.display()));
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn debian_package_installs_into_an_empty_tree_and_passes_lintian() {
    for tool in [
        "cargo-deb",
        "dpkg",
        "dpkg-deb",
        "dpkg-shlibdeps",
        "strip",
        "lintian",
        "systemd-analyze",
        "systemd-sysusers",
        "deb-systemd-helper",
    ] {
        require(tool);
    }
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("out");

    // The package of this very binary; --fast: light compression of a large debug build.
    let script = repo().join("scripts/package");
    let (ok, log) = run(
        &script,
        &[
            "--binary",
            BIN,
            "--out",
            out_dir.to_str().unwrap(),
            "--fast",
        ],
    );
    assert!(ok, "scripts/package failed:\n{log}");
    let debs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(
        debs.len(),
        1,
        "expected one .deb in {}:\n{log}",
        out_dir.display()
    );
    let deb = debs[0].to_str().unwrap();

    // What it holds.
    let (ok, listing) = run(&require("dpkg-deb"), &["-c", deb]);
    assert!(ok, "{listing}");
    for path in [
        "./usr/bin/proxima",
        "./etc/proxima/proxima.toml",
        "./usr/lib/systemd/system/proxima.service",
        "./usr/lib/sysusers.d/proxima.conf",
        "./usr/share/bash-completion/completions/proxima",
        "./usr/share/zsh/vendor-completions/_proxima",
        "./usr/share/fish/vendor_completions.d/proxima.fish",
        "./usr/share/man/man1/proxima.1.gz",
        "./usr/share/man/man1/proxima-resolver-setup.1.gz",
        "./usr/share/doc/proxima/copyright",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "the package lacks {path}:\n{listing}"
        );
    }
    let (ok, info) = run(&require("dpkg-deb"), &["-I", deb]);
    assert!(ok, "{info}");
    for want in [
        "conffiles",
        "postinst",
        "prerm",
        "postrm",
        "Package: proxima",
        "Depends: ",
    ] {
        assert!(info.contains(want), "dpkg-deb -I lacks {want:?}:\n{info}");
    }
    // The changelog's top entry is this version (cargo-deb takes the version from Cargo.toml).
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let (ok, field) = run(&require("dpkg-deb"), &["-f", deb, "Version"]);
    assert!(ok && field.trim() == version, "{field}");
    let changelog = std::fs::read_to_string(repo().join("packaging/debian/changelog")).unwrap();
    assert!(
        changelog.starts_with(&format!("proxima ({version}) ")),
        "packaging/debian/changelog does not start with version {version}: add an entry"
    );
    let (ok, conffiles) = run(&require("dpkg-deb"), &["-I", deb, "conffiles"]);
    assert!(
        ok && conffiles.trim() == "/etc/proxima/proxima.toml",
        "{conffiles}"
    );

    // Installed by dpkg into an empty tree with an admin directory of its own. The maintainer
    // scripts run without chroot (the tree has no shell) with DPKG_ROOT set, which they honour:
    // systemd-sysusers --root creates the user in the tree's /etc/passwd. Dependencies are the
    // host's business, not the empty tree's.
    let root = work.path().join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    let r = format!("--root={}", root.display());
    let dpkg = require("dpkg");
    let dpkg_args = |action: &[&str]| -> Vec<String> {
        let mut v = vec![
            r.clone(),
            "--force-script-chrootless".to_owned(),
            "--force-depends".to_owned(),
            "--no-triggers".to_owned(),
        ];
        v.extend(action.iter().map(|s| (*s).to_owned()));
        v
    };
    let args = dpkg_args(&["-i", deb]);
    let (ok, log) = run(&dpkg, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "dpkg -i into {} failed:\n{log}", root.display());
    let installed_bin = root.join("usr/bin/proxima");
    let (ok, version) = run(&installed_bin, &["--version"]);
    assert!(ok && version.starts_with("proxima "), "{version}");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("proxima:") && l.contains(":/var/lib/proxima:")),
        "postinst made no proxima user:\n{passwd}"
    );
    let (ok, status) = run(&dpkg, &[&r, "-s", "proxima"]);
    assert!(
        ok && status.contains("Status: install ok installed"),
        "{status}"
    );
    assert!(
        status.contains("/etc/proxima/proxima.toml"),
        "no conffile: {status}"
    );

    // The unit, checked by systemd as it would load it: in a root holding the host's units
    // (the targets it is ordered against), the unit, and its ExecStart= binary (hard-linked
    // from the installed tree); man pages from the installed tree (Documentation=). Unknown
    // keys are only warnings to systemd-analyze, so any output at all fails the check.
    let host_units = Path::new("/usr/lib/systemd/system");
    assert!(
        host_units.is_dir(),
        "{} is missing: is systemd installed?",
        host_units.display()
    );
    let check = work.path().join("unit-check");
    let units = check.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(check.join("usr/bin")).unwrap();
    for entry in std::fs::read_dir(host_units).unwrap() {
        let entry = entry.unwrap();
        let to = units.join(entry.file_name());
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else if meta.is_file() {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    std::fs::copy(
        root.join("usr/lib/systemd/system/proxima.service"),
        units.join("proxima.service"),
    )
    .unwrap();
    std::fs::hard_link(&installed_bin, check.join("usr/bin/proxima")).unwrap();
    let analyze = require("systemd-analyze");
    let check_root = format!("--root={}", check.display());
    let out = Command::new(&analyze)
        .args(["verify", &check_root, "proxima.service"])
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify proxima.service:\n{said}"
    );
    // The sandbox, as systemd scores it (0 = fully locked down, 10 = none; 1.5 when written):
    // a weakened unit fails here.
    let (ok, security) = run(
        &analyze,
        &[
            "security",
            "--offline=yes",
            &check_root,
            "--threshold=20",
            "proxima.service",
        ],
    );
    assert!(ok, "the unit's exposure rose above 2.0:\n{security}");

    // Lintian: no errors; the warnings it may print are in ARCHITECTURE.md.
    let (ok, lint) = run(
        &require("lintian"),
        &["--fail-on", "error", "--no-tag-display-limit", deb],
    );
    assert!(ok, "lintian reports errors:\n{lint}");
    assert!(!lint.lines().any(|l| l.starts_with("E: ")), "{lint}");
    eprintln!("lintian:\n{lint}");

    // Purged: the files, the conffile and the data go; the user stays (Debian keeps them).
    std::fs::create_dir_all(root.join("var/lib/proxima")).unwrap();
    let args = dpkg_args(&["--purge", "proxima"]);
    let (ok, log) = run(&dpkg, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "dpkg --purge failed:\n{log}");
    for gone in [
        "usr/bin/proxima",
        "etc/proxima/proxima.toml",
        "var/lib/proxima",
    ] {
        assert!(!root.join(gone).exists(), "{gone} left after purge");
    }
}
