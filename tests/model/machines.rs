//! The real-systemd mode of [`Model`](super::Model): every unit is a machine of its own, a
//! container booted with `systemd-nspawn --boot` whose PID 1 is the real systemd 252 of Debian
//! bookworm, so the charm's rendered units run under the real `systemctl`, as the real
//! `chopsticks` user, with every hardening option of the unit files enforced.
//!
//! - Root filesystem: one shared, read-only rootfs built and cached by
//!   `tests/real-systemd/rootfs.sh`, plus an overlay per machine whose upper directory is on
//!   disk (so a reboot keeps the machine's files, as a real disk does).  The merged tree is
//!   mounted on the host, so tests read a unit's files at [`Machines::root`] even while the
//!   machine is down.
//! - Network: a bridge this model creates, `169.254.S.1/24` on the host side; each machine gets
//!   `169.254.S.(N+10)` on its `host0` from a oneshot unit at boot.  There is no route out: the
//!   host forwards chosen TCP ports of its bridge address to 127.0.0.1 ([`Forwarder`]), which
//!   is how the units reach the RadosGW under test.
//! - Hooks: the harness runs `dispatch` inside the machine with `nsenter` (all of the
//!   container's namespaces); the fake Juju hook tools and the model state are bind-mounted at
//!   their host paths, so they work exactly as in process mode.
//! - No systemd on the host: `--register=no --keep-unit`, and each container is put in a cgroup
//!   of its own before `systemd-nspawn` starts (`machinectl`/`systemctl -M` cannot be used).
//!
//! Nothing here falls back to process mode: when a machine cannot be made or does not boot,
//! the error says why.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Context, Error, Result};

/// How long a machine may take from `systemd-nspawn` to `systemctl is-system-running` saying
/// `running` (about 1.5 s here; generous for a loaded 2-core CI machine).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a clean `systemctl poweroff`/`reboot` may take (services get their stop timeouts).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(150);
/// How long a SIGKILLed machine may take to be reaped.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// `systemd-nspawn`'s exit status when the container asked for a reboot.
const NSPAWN_REBOOTED: i32 = 133;
/// PATH of a Debian machine (what Juju's hooks get after the hook tools' directory).
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Host part of the first machine's address: machine N is `169.254.S.(N+10)`.
const FIRST_HOST: u32 = 10;

/// What the containers are made of and where they live, for one model.
pub struct Machines {
    /// Short, unique on this host: prefix of the bridge, machine and cgroup names.
    tag: String,
    /// The shared read-only lower layer.
    rootfs: PathBuf,
    /// Per machine: overlay upper/work dirs and the merged root.
    dir: PathBuf,
    /// Where the machines' console output goes (kept with the model dir by FAKE_JUJU_KEEP).
    logs: PathBuf,
    bridge: String,
    /// Third octet of the bridge's 169.254.S.0/24.
    subnet: u8,
    /// Host directories mounted at the same path in every machine (read-only, read-write).
    binds_ro: Vec<PathBuf>,
    binds_rw: Vec<PathBuf>,
    /// cgroup hierarchies a container's cgroup is made in (v1 name=systemd + unified, or v2).
    cgroup_roots: Vec<PathBuf>,
    machines: BTreeMap<String, Machine>,
    forwarders: Vec<Forwarder>,
    torn_down: bool,
}

/// One unit's machine.
struct Machine {
    /// systemd-nspawn machine name (also its hostname; the host side of its veth is `vb-NAME`).
    name: String,
    number: u32,
    /// The running `systemd-nspawn`, `None` while the machine is down.
    nspawn: Option<Child>,
    /// The container's PID 1 (systemd) as the host sees it; `None` while down.
    init: Option<u32>,
    /// Whether the overlay is mounted on [`Machines::root`].
    mounted: bool,
    /// Times the machine was booted (1 after the first boot).
    boots: u32,
}

fn run(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        return Err(Error(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(out)
}

/// The repository's `tests/...` path.
fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Why this machine cannot run the real-systemd tests, if it cannot (checked before anything
/// is made, so the failure names the missing piece rather than a later symptom).
fn check_prerequisites() -> Result<Vec<PathBuf>> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error(
            "real-systemd mode needs root (systemd-nspawn, overlay mounts, a bridge): run tests/real-systemd.sh as root".into(),
        ));
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(Error(format!(
                "real-systemd mode needs {tool}: apt-get install {package} (tests/real-systemd.sh and .ci/run install it)"
            )));
        }
    }
    let cg = Path::new("/sys/fs/cgroup");
    let roots: Vec<PathBuf> = if cg.join("cgroup.controllers").exists() {
        vec![cg.to_path_buf()]
    } else {
        ["systemd", "unified"]
            .iter()
            .map(|h| cg.join(h))
            .filter(|p| p.join("cgroup.procs").exists())
            .collect()
    };
    if roots.is_empty() {
        return Err(Error(
            "no cgroup access: neither a cgroup2 hierarchy at /sys/fs/cgroup nor a name=systemd one at /sys/fs/cgroup/systemd; systemd cannot boot in a container here".into(),
        ));
    }
    Ok(roots)
}

/// The shared rootfs, built (about a minute, once) and cached by the project's script.
fn rootfs() -> Result<PathBuf> {
    let script = repo_path("tests/real-systemd/rootfs.sh");
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        return Err(Error(format!(
            "{} failed ({}): cannot build the containers' root filesystem",
            script.display(),
            out.status
        )));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.join("usr/lib/systemd/systemd").exists() {
        return Err(Error(format!(
            "{} printed {}, which has no systemd",
            script.display(),
            path.display()
        )));
    }
    Ok(path)
}

fn interfaces_text() -> String {
    Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Machines {
    /// Checks the host, builds or finds the rootfs and creates this model's bridge.
    /// `binds_ro`/`binds_rw` are host directories every machine sees at the same path.
    /// Console logs go to `logs`.
    pub fn new(binds_ro: Vec<PathBuf>, binds_rw: Vec<PathBuf>, logs: PathBuf) -> Result<Machines> {
        let cgroup_roots = check_prerequisites()?;
        let rootfs = rootfs()?;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = std::process::id().wrapping_mul(31).wrapping_add(seq);
        let taken = interfaces_text();
        let (tag, subnet) = (0..250u32)
            .map(|i| {
                let tag = format!("c{:04x}", (seed.wrapping_add(i * 7919)) & 0xffff);
                let subnet = ((seed.wrapping_add(i)) % 250 + 3) as u8;
                (tag, subnet)
            })
            .find(|(tag, subnet)| {
                !Path::new("/sys/class/net")
                    .join(format!("br{tag}"))
                    .exists()
                    && !taken.contains(&format!(" 169.254.{subnet}."))
            })
            .ok_or_else(|| Error("no free 169.254.S.0/24 subnet for a test bridge".into()))?;
        let dir = tempfile::Builder::new()
            .prefix("chopsticks-machines-")
            .tempdir()?
            .keep();
        let bridge = format!("br{tag}");
        std::fs::create_dir_all(&logs)?;
        let machines = Machines {
            tag,
            rootfs,
            dir,
            logs,
            bridge: bridge.clone(),
            subnet,
            binds_ro,
            binds_rw,
            cgroup_roots,
            machines: BTreeMap::new(),
            forwarders: Vec::new(),
            torn_down: false,
        };
        run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
        run(Command::new("ip").args([
            "addr",
            "add",
            &format!("{}/24", machines.host_address()),
            "dev",
            &bridge,
        ]))?;
        run(Command::new("ip").args(["link", "set", &bridge, "up"]))?;
        Ok(machines)
    }

    /// The host's address on the bridge (where [`Forwarder`]s listen).
    pub fn host_address(&self) -> String {
        format!("169.254.{}.1", self.subnet)
    }

    /// Machine `number`'s address on the bridge.
    pub fn address(&self, number: u32) -> String {
        format!("169.254.{}.{}", self.subnet, number + FIRST_HOST)
    }

    pub fn cidr(&self) -> String {
        format!("169.254.{}.0/24", self.subnet)
    }

    fn machine_dir(&self, unit: &str) -> PathBuf {
        self.dir.join(unit.replace('/', "-"))
    }

    /// The unit's `/` as the host sees it (the merged overlay).
    pub fn root(&self, unit: &str) -> PathBuf {
        self.machine_dir(unit).join("root")
    }

    fn console_log(&self, unit: &str) -> PathBuf {
        self.logs
            .join(format!("{}.console.log", unit.replace('/', "-")))
    }

    fn machine(&self, unit: &str) -> Result<&Machine> {
        self.machines
            .get(unit)
            .ok_or_else(|| Error(format!("{unit} has no machine")))
    }

    fn machine_mut(&mut self, unit: &str) -> Result<&mut Machine> {
        self.machines
            .get_mut(unit)
            .ok_or_else(|| Error(format!("{unit} has no machine")))
    }

    /// Where the charm is unpacked inside the machine (Juju's layout).
    pub fn charm_dir(app: &str, number: u32) -> PathBuf {
        PathBuf::from(format!("/var/lib/juju/agents/unit-{app}-{number}/charm"))
    }

    /// Makes unit `unit`'s machine (not booted yet): mounts its overlay, puts the charm in
    /// place and the unit that gives `host0` its address at boot.
    pub fn create(&mut self, unit: &str, number: u32, app: &str, charm: &Path) -> Result<()> {
        let mdir = self.machine_dir(unit);
        let (upper, work, root) = (mdir.join("upper"), mdir.join("work"), self.root(unit));
        for d in [&upper, &work, &root] {
            std::fs::create_dir_all(d)?;
        }
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                self.rootfs.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root))?;
        let name = format!("{}-{number}", self.tag);
        self.machines.insert(
            unit.to_string(),
            Machine {
                name,
                number,
                nspawn: None,
                init: None,
                mounted: true,
                boots: 0,
            },
        );
        let charm_in = root.join(Self::charm_dir(app, number).strip_prefix("/").unwrap());
        std::fs::create_dir_all(&charm_in)?;
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", charm.display()))
            .arg(&charm_in))?;
        let units = root.join("etc/systemd/system");
        let service = "test-bridge-address.service";
        std::fs::write(
            units.join(service),
            format!(
                "# The test bridge's address (tests/model/machines.rs): there is no DHCP on it.\n\
                 [Unit]\nDescription=Address on the test bridge\nDefaultDependencies=no\n\
                 Before=network.target network-online.target\n\n\
                 [Service]\nType=oneshot\nRemainAfterExit=yes\n\
                 ExecStart=/sbin/ip link set host0 up\n\
                 ExecStart=/sbin/ip addr replace {}/24 dev host0\n\n\
                 [Install]\nWantedBy=network-online.target multi-user.target\n",
                self.address(number)
            ),
        )?;
        for target in ["network-online.target.wants", "multi-user.target.wants"] {
            let wants = units.join(target);
            std::fs::create_dir_all(&wants)?;
            let link = wants.join(service);
            if !link.exists() {
                std::os::unix::fs::symlink(format!("../{service}"), link)?;
            }
        }
        Ok(())
    }

    /// Starts `systemd-nspawn --boot` for the unit's machine (returns without waiting).
    fn spawn(&mut self, unit: &str) -> Result<()> {
        let root = self.root(unit);
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.console_log(unit))?;
        let m = self.machine(unit)?;
        if m.nspawn.is_some() {
            return Err(Error(format!("{unit}'s machine is already up")));
        }
        // One host cgroup per container: with no systemd on the host, --keep-unit makes
        // systemd-nspawn use the cgroup it was started in, so it must be the container's own.
        let mut procs = Vec::new();
        for cg in &self.cgroup_roots {
            let dir = cg.join(&m.name);
            std::fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "no cgroup access: cannot create {} (systemd cannot boot in a container here)",
                    dir.display()
                )
            })?;
            procs.push(dir.join("cgroup.procs").display().to_string());
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-ec")
            .arg("for p in $CGROUP_PROCS; do echo $$ > \"$p\"; done; exec \"$@\"")
            .arg("sh")
            .arg("systemd-nspawn")
            .args([
                "--quiet",
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=read-only",
                "--link-journal=no",
                "--resolv-conf=off",
                "--timezone=off",
            ])
            .arg(format!("--directory={}", root.display()))
            .arg(format!("--machine={}", m.name))
            .arg(format!("--network-bridge={}", self.bridge));
        for b in &self.binds_ro {
            cmd.arg(format!("--bind-ro={}", b.display()));
        }
        for b in &self.binds_rw {
            cmd.arg(format!("--bind={}", b.display()));
        }
        cmd.env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("CGROUP_PROCS", procs.join(" "))
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting systemd-nspawn for {unit}"))?;
        let m = self.machine_mut(unit)?;
        m.nspawn = Some(child);
        m.init = None;
        m.boots += 1;
        Ok(())
    }

    /// Waits until the unit's machine has booted: its PID 1 is systemd and
    /// `systemctl is-system-running` says `running` (or `degraded`: booted, with a failed unit
    /// that the tests look at themselves).
    fn wait_booted(&mut self, unit: &str) -> Result<()> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut last = String::new();
        loop {
            let console = self.console_log(unit);
            let m = self.machine_mut(unit)?;
            let child = m
                .nspawn
                .as_mut()
                .ok_or_else(|| Error(format!("{unit}'s machine is not up")))?;
            if let Some(status) = child.try_wait()? {
                m.nspawn = None;
                m.init = None;
                return Err(Error(format!(
                    "{unit}'s machine did not boot: systemd-nspawn exited ({status})\n--- console ---\n{}",
                    super::tail(&std::fs::read_to_string(console).unwrap_or_default(), 30)
                )));
            }
            if m.init.is_none() {
                m.init = container_init(child.id());
            }
            if let Some(init) = m.init {
                let out = Command::new("nsenter")
                    .args([
                        "-t",
                        &init.to_string(),
                        "-a",
                        "systemctl",
                        "is-system-running",
                    ])
                    .env_clear()
                    .env("PATH", SYSTEM_PATH)
                    .stdin(Stdio::null())
                    .output()?;
                last = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if last == "running" || last == "degraded" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error(format!(
                    "{unit}'s machine did not finish booting within {BOOT_TIMEOUT:?} (is-system-running: {last:?})\n--- console ---\n{}",
                    super::tail(&std::fs::read_to_string(self.console_log(unit)).unwrap_or_default(), 30)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Boots the machines of `units` side by side and waits for all of them.
    pub fn boot_all(&mut self, units: &[String]) -> Result<()> {
        for unit in units {
            self.spawn(unit)?;
        }
        for unit in units {
            self.wait_booted(unit)?;
        }
        Ok(())
    }

    pub fn boot(&mut self, unit: &str) -> Result<()> {
        self.boot_all(&[unit.to_string()])
    }

    /// Whether the unit's machine runs.
    pub fn is_up(&self, unit: &str) -> bool {
        self.machines
            .get(unit)
            .is_some_and(|m| m.nspawn.is_some() && m.init.is_some())
    }

    /// How many times the unit's machine was booted.
    pub fn boots(&self, unit: &str) -> u32 {
        self.machines.get(unit).map_or(0, |m| m.boots)
    }

    /// The container's PID 1 as the host sees it.
    pub fn init_pid(&self, unit: &str) -> Result<u32> {
        self.machine(unit)?
            .init
            .ok_or_else(|| Error(format!("{unit}'s machine is down")))
    }

    /// A command that runs `program` inside the unit's machine (every namespace of its PID 1,
    /// working directory `wd` there), with no environment but what the caller adds.
    pub fn command(&self, unit: &str, wd: &Path, program: &str) -> Result<Command> {
        let init = self.init_pid(unit)?;
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &init.to_string(), "-a"])
            .arg(format!("--wdns={}", wd.display()))
            .arg("--")
            .arg(program)
            .env_clear();
        Ok(cmd)
    }

    /// Runs `argv` as root inside the unit's machine (PATH of a Debian machine, cwd `/`).
    pub fn exec(&self, unit: &str, argv: &[&str]) -> Result<Output> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error("no command".into()))?;
        let mut cmd = self.command(unit, Path::new("/"), program)?;
        cmd.args(args)
            .env("PATH", SYSTEM_PATH)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        cmd.output()
            .with_context(|| format!("running {argv:?} in {unit}'s machine"))
    }

    fn wait_exit(&mut self, unit: &str, timeout: Duration) -> Result<Option<ExitStatus>> {
        let m = self.machine_mut(unit)?;
        let Some(child) = m.nspawn.as_mut() else {
            return Ok(None);
        };
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                return Err(Error(format!(
                    "{unit}'s machine did not stop within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        m.nspawn = None;
        m.init = None;
        Ok(Some(status))
    }

    /// Host loss: SIGKILL to the container's PID 1, which takes every process of the machine
    /// down at once (no service is stopped, nothing is flushed); the disk (overlay) stays.
    pub fn kill(&mut self, unit: &str) -> Result<()> {
        let m = self.machine(unit)?;
        if let Some(init) = m.init {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        } else if let Some(child) = &m.nspawn {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.wait_exit(unit, KILL_TIMEOUT)?;
        Ok(())
    }

    /// `systemctl reboot` inside the machine: a clean shutdown, then it boots again from the
    /// same disk.  Returns once it has booted.
    pub fn reboot(&mut self, unit: &str) -> Result<()> {
        // systemctl's connection is cut by the shutdown itself: its exit status says nothing.
        let _ = self.exec(unit, &["systemctl", "reboot"])?;
        let status = self.wait_exit(unit, SHUTDOWN_TIMEOUT)?;
        if status.and_then(|s| s.code()) != Some(NSPAWN_REBOOTED) {
            return Err(Error(format!(
                "{unit}'s machine did not reboot: systemd-nspawn exited {status:?}\n--- console ---\n{}",
                super::tail(&std::fs::read_to_string(self.console_log(unit)).unwrap_or_default(), 30)
            )));
        }
        self.boot(unit)
    }

    /// `systemctl poweroff` inside the machine (a clean shutdown, as when Juju removes it).
    pub fn poweroff(&mut self, unit: &str) -> Result<()> {
        if !self.is_up(unit) {
            return Ok(());
        }
        let _ = self.exec(unit, &["systemctl", "poweroff"])?;
        let status = self.wait_exit(unit, SHUTDOWN_TIMEOUT)?;
        if !status.is_none_or(|s| s.success()) {
            return Err(Error(format!(
                "{unit}'s machine did not power off cleanly: systemd-nspawn exited {status:?}"
            )));
        }
        Ok(())
    }

    /// Takes the unit's machine away for good: killed if up, overlay unmounted, cgroups and
    /// files removed.
    pub fn destroy(&mut self, unit: &str) -> Result<()> {
        if !self.machines.contains_key(unit) {
            return Ok(());
        }
        let mut errors = Vec::new();
        if self.is_up(unit) || self.machine(unit)?.nspawn.is_some() {
            if let Err(e) = self.kill(unit) {
                errors.push(e.to_string());
            }
        }
        let root = self.root(unit);
        let m = self.machines.remove(unit).expect("checked above");
        if m.mounted {
            // Lazy: a test's process may still hold a file of the machine open.
            if let Err(e) = run(Command::new("umount").arg("--lazy").arg(&root)) {
                errors.push(e.to_string());
            }
        }
        for cg in &self.cgroup_roots {
            remove_cgroup(&cg.join(&m.name));
        }
        if errors.is_empty() {
            let _ = std::fs::remove_dir_all(self.machine_dir(unit));
            Ok(())
        } else {
            Err(Error(errors.join("; ")))
        }
    }

    /// Forwards TCP connections to `host_port` of the bridge's host address to `target`
    /// (on the host's loopback); returns the address the units use.
    pub fn forward(&mut self, target: SocketAddr) -> Result<SocketAddr> {
        if let Some(f) = self.forwarders.iter().find(|f| f.target == target) {
            return Ok(f.listen);
        }
        let host: std::net::IpAddr = self
            .host_address()
            .parse()
            .map_err(|e| Error(format!("bridge address: {e}")))?;
        // The same port as the target when it is free on the bridge address, else any.
        let listener = TcpListener::bind((host, target.port()))
            .or_else(|_| TcpListener::bind((host, 0)))
            .with_context(|| format!("listening on {host} for a forwarder"))?;
        let f = Forwarder::start(listener, target)?;
        let listen = f.listen;
        self.forwarders.push(f);
        Ok(listen)
    }

    /// Every machine destroyed, the forwarders stopped, the bridge deleted.  Idempotent.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        if std::env::var_os("CHOPSTICKS_MACHINES_KEEP").is_some() {
            // Debugging: leave the machines running (tests/real-systemd/cleanup.sh removes them).
            eprintln!(
                "real-systemd: keeping machines {} (bridge {}) in {}",
                self.machines
                    .values()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                self.bridge,
                self.dir.display()
            );
            self.torn_down = true;
            return;
        }
        let units: Vec<String> = self.machines.keys().cloned().collect();
        for unit in units {
            if let Err(e) = self.destroy(&unit) {
                eprintln!("real-systemd teardown of {unit}: {e}");
            }
        }
        for f in &mut self.forwarders {
            f.stop();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.torn_down = true;
    }

    /// Where the machines' console logs are.
    pub fn logs(&self) -> &Path {
        &self.logs
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Removes a cgroup and the ones systemd made under it, deepest first.
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The container's PID 1: the child of `systemd-nspawn` that runs systemd in a PID namespace
/// of its own.
fn container_init(nspawn: u32) -> Option<u32> {
    let own_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let children = std::fs::read_dir(format!("/proc/{nspawn}/task"))
        .ok()?
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    children.into_iter().find(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        comm.trim() == "systemd" && ns.is_some_and(|ns| ns != own_ns)
    })
}

/// A TCP forwarder from the host's bridge address to a loopback service (RadosGW): the units
/// have no route to the host's 127.0.0.1.
struct Forwarder {
    listen: SocketAddr,
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(listener: TcpListener, target: SocketAddr) -> Result<Forwarder> {
        let listen = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(5))
                        {
                            pipe(client, server);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Forwarder {
            listen,
            target,
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways between two connected sockets, each direction in its own thread, and
/// passes a half-close on.
fn pipe(a: TcpStream, b: TcpStream) {
    // Bounded: a connection from a machine that was killed never closes by itself.
    for s in [&a, &b] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(600)));
    }
    let pairs = [
        (a.try_clone(), b.try_clone()),
        (b.try_clone(), a.try_clone()),
    ];
    for (from, to) in pairs {
        if let (Ok(mut from), Ok(mut to)) = (from, to) {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        }
    }
}
