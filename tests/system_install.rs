//! An install that fits the system, through the real binary: completions and man pages generated
//! from the CLI, and `proxima resolver setup|undo` into a temporary root (with stand-in
//! `systemctl`, `ip` and `resolvectl` that log their calls, so the running machine is never
//! touched).

use std::os::unix::fs::PermissionsExt;
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
    // A node on port 53: the route names no port.
    let root = root_with_config("dns_listen = \"127.0.0.1:53\"\n");
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
