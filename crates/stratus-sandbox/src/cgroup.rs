//! Control groups for execution environments, over cgroupfs directly (v1 and
//! v2; see STACK.md for why not cgroups-rs).
//!
//! Layout: one directory per server instance under a shared `stratus`
//! parent, one per environment below it:
//!
//! * v1: `<mount of each controller>/stratus/<pid>-<starttime>/<env-id>` for
//!   the memory, cpu, cpuacct, pids and freezer controllers (co-mounted
//!   controllers share one directory);
//! * v2: `<cgroup2 mount>/stratus/<pid>-<starttime>/<env-id>` with the memory,
//!   cpu and pids controllers enabled down the tree.
//!
//! Limits follow AWS's documented model: memory = MemorySize, no swap; CPU in
//! proportion to memory (1,769 MB = one vCPU, 10,240 MB = six), capped by the
//! host's cores; a pids limit. Idle environments are frozen (v1
//! `freezer.state`, v2 `cgroup.freeze`).
//!
//! The instance directory of a server that is gone (its pid dead or reused)
//! is removed, with anything still running in it, when the next server
//! starts.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The CFS period used for CPU limits (100 ms, the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Smallest CPU quota the kernel accepts is 1 ms; we never go below it.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;
/// Tasks (processes and threads) an environment may have at once.
pub const PIDS_MAX: u32 = 1024;
/// Name of the shared parent directory in each hierarchy.
pub const PARENT: &str = "stratus";

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Per-controller hierarchies (`/sys/fs/cgroup/<controller>`).
    V1,
    /// The unified hierarchy.
    V2,
}

impl Version {
    /// `v1` / `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// Controllers stratus uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Cpu,
    Cpuacct,
    Pids,
    Freezer,
}

impl Controller {
    const ALL: [Controller; 5] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Pids,
        Controller::Freezer,
    ];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
        }
    }
}

/// vCPUs AWS gives a function of `memory_mb`: linear up to one vCPU at
/// 1,769 MB, then linear to six vCPUs at 10,240 MB (the documented points).
pub fn vcpus_for_memory(memory_mb: u32) -> f64 {
    let mb = memory_mb as f64;
    if mb <= 1769.0 {
        mb / 1769.0
    } else {
        (1.0 + (mb - 1769.0) * 5.0 / (10240.0 - 1769.0)).min(6.0)
    }
}

/// CFS quota (µs per [`CPU_PERIOD_US`]) for a function of `memory_mb` on a
/// host with `cores` cores.
pub fn cpu_quota_us(memory_mb: u32, cores: usize) -> u64 {
    let v = vcpus_for_memory(memory_mb).min(cores.max(1) as f64);
    ((v * CPU_PERIOD_US as f64).round() as u64).max(MIN_CPU_QUOTA_US)
}

/// Limits of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in MB (MemorySize).
    pub memory_mb: u32,
    /// Task limit.
    pub pids_max: u32,
}

/// One mounted hierarchy: its directory for this server instance and the
/// controllers it carries.
#[derive(Debug, Clone)]
struct Hierarchy {
    /// `<mount>/stratus/<instance>`.
    instance_dir: PathBuf,
    controllers: Vec<Controller>,
}

/// The cgroup tree of one server instance.
#[derive(Debug)]
pub struct CgroupRoot {
    version: Version,
    hierarchies: Vec<Hierarchy>,
    /// Whether v1 `memory.memsw.*` (swap accounting) exists.
    memsw: bool,
    cores: usize,
    instance: String,
}

/// A mount from /proc/self/mountinfo: mount point, fs type, super options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

/// Parses /proc/self/mountinfo (`man 5 proc`): fields up to ` - `, then fs
/// type, source and super options. Octal escapes in paths are decoded.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        out.push(MountEntry {
            mount_point: PathBuf::from(unescape_octal(l[4])),
            fs_type: r[0].to_string(),
            super_options: r[2].split(',').map(str::to_string).collect(),
        });
    }
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where each v1 controller is mounted (first mount wins), from mountinfo.
pub fn v1_mounts(mounts: &[MountEntry]) -> Vec<(Controller, PathBuf)> {
    let mut out = Vec::new();
    for c in Controller::ALL {
        if let Some(m) = mounts
            .iter()
            .find(|m| m.fs_type == "cgroup" && m.super_options.iter().any(|o| o == c.name()))
        {
            out.push((c, m.mount_point.clone()));
        }
    }
    out
}

/// The cgroup2 mount point, if any.
pub fn v2_mount(mounts: &[MountEntry]) -> Option<PathBuf> {
    mounts
        .iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| m.mount_point.clone())
}

/// Parses `key value` lines (memory.events, cpu.stat, memory.oom_control).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// This server instance's directory name: `<pid>-<starttime>` (starttime
/// from /proc/<pid>/stat, so a reused pid is told apart).
pub fn instance_name(pid: u32) -> String {
    format!("{pid}-{}", proc_start_time(pid).unwrap_or(0))
}

fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime); fields after the command name (which may hold
    // spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True if a directory named like [`instance_name`] belongs to a live process.
pub fn instance_alive(name: &str) -> bool {
    let Some((pid, start)) = name.split_once('-') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    proc_start_time(pid) == Some(start)
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn mkdir(path: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

fn host_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl CgroupRoot {
    /// Finds the host's cgroup interface, creates this instance's
    /// directories (`stratus/<instance>`) and removes those of servers that
    /// are gone.
    ///
    /// Errors: no usable memory controller, or the directories cannot be
    /// created (not root, read-only cgroupfs); the message says which.
    pub fn setup(instance: &str) -> Result<CgroupRoot, String> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mounts = parse_mountinfo(&text);
        let v1 = v1_mounts(&mounts);
        if v1.iter().any(|(c, _)| *c == Controller::Memory) {
            return Self::setup_v1(instance, &v1);
        }
        if let Some(m) = v2_mount(&mounts) {
            return Self::setup_v2(instance, &m);
        }
        Err(
            "no cgroup memory controller is mounted (neither cgroup v1 memory nor cgroup v2)"
                .into(),
        )
    }

    fn setup_v1(instance: &str, v1: &[(Controller, PathBuf)]) -> Result<CgroupRoot, String> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for (c, mount) in v1 {
            let parent = mount.join(PARENT);
            let dir = parent.join(instance);
            if let Some(h) = hierarchies.iter_mut().find(|h| h.instance_dir == dir) {
                h.controllers.push(*c);
                continue;
            }
            hierarchies.push(Hierarchy {
                instance_dir: dir,
                controllers: vec![*c],
            });
        }
        let root = CgroupRoot {
            version: Version::V1,
            memsw: v1
                .iter()
                .find(|(c, _)| *c == Controller::Memory)
                .is_some_and(|(_, m)| m.join("memory.memsw.limit_in_bytes").exists()),
            hierarchies,
            cores: host_cores(),
            instance: instance.to_string(),
        };
        root.remove_stale();
        for h in &root.hierarchies {
            let parent = h.instance_dir.parent().unwrap_or(Path::new("/"));
            mkdir(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            mkdir(&h.instance_dir)
                .map_err(|e| format!("cannot create {}: {e}", h.instance_dir.display()))?;
        }
        Ok(root)
    }

    fn setup_v2(instance: &str, mount: &Path) -> Result<CgroupRoot, String> {
        let available = std::fs::read_to_string(mount.join("cgroup.controllers"))
            .map_err(|e| format!("cannot read {}/cgroup.controllers: {e}", mount.display()))?;
        let have: Vec<&str> = available.split_whitespace().collect();
        if !have.contains(&"memory") {
            return Err(format!(
                "the cgroup v2 hierarchy at {} has no memory controller",
                mount.display()
            ));
        }
        let wanted: Vec<&str> = ["memory", "cpu", "pids"]
            .into_iter()
            .filter(|c| have.contains(c))
            .collect();
        let enable = wanted
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut controllers = vec![Controller::Memory, Controller::Freezer];
        if wanted.contains(&"cpu") {
            controllers.push(Controller::Cpu);
            controllers.push(Controller::Cpuacct);
        }
        if wanted.contains(&"pids") {
            controllers.push(Controller::Pids);
        }
        let parent = mount.join(PARENT);
        let dir = parent.join(instance);
        let root = CgroupRoot {
            version: Version::V2,
            hierarchies: vec![Hierarchy {
                instance_dir: dir.clone(),
                controllers,
            }],
            memsw: false,
            cores: host_cores(),
            instance: instance.to_string(),
        };
        root.remove_stale();
        for (d, create) in [(mount, false), (&parent, true), (&dir, true)] {
            if create {
                mkdir(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            }
            write_file(&d.join("cgroup.subtree_control"), &enable).map_err(|e| {
                format!(
                    "cannot enable the {} controllers in {} ({e}); stratus needs a delegated cgroup v2 subtree",
                    wanted.join(", "),
                    d.display()
                )
            })?;
        }
        Ok(root)
    }

    /// v1 or v2.
    pub fn version(&self) -> Version {
        self.version
    }

    /// This instance's directories (one per hierarchy).
    pub fn instance_dirs(&self) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| h.instance_dir.clone())
            .collect()
    }

    /// The instance directory name (`<pid>-<starttime>`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Host cores used to cap CPU limits.
    pub fn cores(&self) -> usize {
        self.cores
    }

    fn dir_of(&self, c: Controller) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.contains(&c))
            .map(|h| h.instance_dir.as_path())
    }

    /// Creates the cgroup of environment `id` with `limits` (memory and pids
    /// now; the CPU limit with [`EnvCgroup::limit_cpu`]).
    ///
    /// Errors: a directory cannot be created or the memory limit not set
    /// (what is created so far is removed).
    pub fn create(&self, id: &str, limits: Limits) -> std::io::Result<EnvCgroup> {
        let mut cg = EnvCgroup {
            version: self.version,
            dirs: Vec::new(),
            memory: None,
            cpu: None,
            cpuacct: None,
            pids: None,
            freezer: None,
            limit_bytes: limits.memory_mb as u64 * 1024 * 1024,
            memory_mb: limits.memory_mb,
            cores: self.cores,
        };
        for h in &self.hierarchies {
            let d = h.instance_dir.join(id);
            if let Err(e) = std::fs::create_dir(&d) {
                cg.remove_dirs();
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot create cgroup {}: {e}", d.display()),
                ));
            }
            cg.dirs.push(d);
        }
        let at = |c: Controller| self.dir_of(c).map(|p| p.join(id));
        cg.memory = at(Controller::Memory);
        cg.cpu = at(Controller::Cpu);
        cg.cpuacct = at(Controller::Cpuacct);
        cg.pids = at(Controller::Pids);
        cg.freezer = at(Controller::Freezer);
        if let Err(e) = cg.apply(limits, self.memsw) {
            cg.remove_dirs();
            return Err(e);
        }
        Ok(cg)
    }

    fn apply_note(e: std::io::Error, what: &Path) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("{}: {e}", what.display()))
    }

    /// Removes every instance directory whose server is gone (killing what
    /// still runs there), in every hierarchy.
    fn remove_stale(&self) {
        let mut stale: Vec<PathBuf> = Vec::new();
        for h in &self.hierarchies {
            let parent = h.instance_dir.parent().unwrap_or(Path::new("/"));
            let Ok(rd) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && name != self.instance && !instance_alive(&name) {
                    stale.push(e.path());
                }
            }
        }
        if !stale.is_empty() {
            destroy_trees(&stale, self.version);
        }
    }

    /// Removes this instance's directories and everything below them
    /// (server shutdown), killing any process still there.
    pub fn destroy(&self) {
        destroy_trees(&self.instance_dirs(), self.version);
    }

    /// Environment cgroups currently under this instance (any hierarchy).
    pub fn env_count(&self) -> usize {
        self.hierarchies
            .first()
            .and_then(|h| std::fs::read_dir(&h.instance_dir).ok())
            .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0)
    }
}

/// Thaws, kills and removes cgroup trees (children first). Retries for up to
/// two seconds while processes are still exiting.
fn destroy_trees(roots: &[PathBuf], version: Version) {
    let mut all: Vec<PathBuf> = Vec::new();
    for r in roots {
        collect_dirs(r, &mut all);
    }
    // Deepest first for rmdir.
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        for d in &all {
            match version {
                Version::V1 => {
                    let _ = write_file(&d.join("freezer.state"), "THAWED");
                }
                Version::V2 => {
                    let _ = write_file(&d.join("cgroup.freeze"), "0");
                }
            }
        }
        for d in &all {
            if version == Version::V2 && d.join("cgroup.kill").exists() {
                let _ = write_file(&d.join("cgroup.kill"), "1");
            }
            for pid in read_pids(&d.join("cgroup.procs")) {
                // SAFETY: kill(2) on a pid read from the cgroup we own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let mut left = false;
        for d in &all {
            if d.exists() && std::fs::remove_dir(d).is_err() {
                left = true;
            }
        }
        if !left || Instant::now() > end {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The cgroup(s) of one environment.
#[derive(Debug)]
pub struct EnvCgroup {
    version: Version,
    /// One directory per hierarchy.
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    pids: Option<PathBuf>,
    freezer: Option<PathBuf>,
    limit_bytes: u64,
    memory_mb: u32,
    cores: usize,
}

impl EnvCgroup {
    fn apply(&self, limits: Limits, memsw: bool) -> std::io::Result<()> {
        let bytes = limits.memory_mb as u64 * 1024 * 1024;
        if let Some(m) = &self.memory {
            match self.version {
                Version::V1 => {
                    let p = m.join("memory.limit_in_bytes");
                    write_file(&p, &bytes.to_string())
                        .map_err(|e| CgroupRoot::apply_note(e, &p))?;
                    if memsw {
                        // Memory plus swap = memory: no swapping past the limit.
                        let _ =
                            write_file(&m.join("memory.memsw.limit_in_bytes"), &bytes.to_string());
                    }
                    let _ = write_file(&m.join("memory.swappiness"), "0");
                }
                Version::V2 => {
                    let p = m.join("memory.max");
                    write_file(&p, &bytes.to_string())
                        .map_err(|e| CgroupRoot::apply_note(e, &p))?;
                    let _ = write_file(&m.join("memory.swap.max"), "0");
                }
            }
        }
        if let Some(p) = &self.pids {
            let _ = write_file(&p.join("pids.max"), &limits.pids_max.to_string());
        }
        Ok(())
    }

    /// Sets the CPU limit for this environment's memory size (called when
    /// init has finished; the init phase runs unthrottled).
    pub fn limit_cpu(&self) {
        let Some(c) = &self.cpu else {
            return;
        };
        let quota = cpu_quota_us(self.memory_mb, self.cores);
        match self.version {
            Version::V1 => {
                let _ = write_file(&c.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string());
                let _ = write_file(&c.join("cpu.cfs_quota_us"), &quota.to_string());
            }
            Version::V2 => {
                let _ = write_file(&c.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"));
            }
        }
    }

    /// The `cgroup.procs` files a new process writes `0` to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The environment's directories (one per hierarchy).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The memory limit in bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Freezes every task (asynchronous in the kernel: tasks stop within
    /// moments).
    pub fn freeze(&self) -> std::io::Result<()> {
        match (self.version, &self.freezer) {
            (Version::V1, Some(f)) => write_file(&f.join("freezer.state"), "FROZEN"),
            (Version::V2, Some(f)) => write_file(&f.join("cgroup.freeze"), "1"),
            _ => Ok(()),
        }
    }

    /// Thaws every task.
    pub fn thaw(&self) -> std::io::Result<()> {
        match (self.version, &self.freezer) {
            (Version::V1, Some(f)) => write_file(&f.join("freezer.state"), "THAWED"),
            (Version::V2, Some(f)) => write_file(&f.join("cgroup.freeze"), "0"),
            _ => Ok(()),
        }
    }

    /// Whether the freezer reports the cgroup frozen.
    pub fn is_frozen(&self) -> bool {
        match (self.version, &self.freezer) {
            (Version::V1, Some(f)) => {
                std::fs::read_to_string(f.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            }
            (Version::V2, Some(f)) => {
                std::fs::read_to_string(f.join("cgroup.events"))
                    .ok()
                    .and_then(|s| keyed_value(&s, "frozen"))
                    == Some(1)
            }
            _ => false,
        }
    }

    /// Peak memory use in bytes (v1 `memory.max_usage_in_bytes`, v2
    /// `memory.peak`, kernel 5.19+).
    pub fn peak_bytes(&self) -> Option<u64> {
        let m = self.memory.as_ref()?;
        match self.version {
            Version::V1 => read_u64(&m.join("memory.max_usage_in_bytes")),
            Version::V2 => read_u64(&m.join("memory.peak")),
        }
    }

    /// Current memory use in bytes.
    pub fn usage_bytes(&self) -> Option<u64> {
        let m = self.memory.as_ref()?;
        match self.version {
            Version::V1 => read_u64(&m.join("memory.usage_in_bytes")),
            Version::V2 => read_u64(&m.join("memory.current")),
        }
    }

    /// Processes the kernel's OOM killer has killed in this cgroup (v1
    /// `memory.oom_control` oom_kill, v2 `memory.events` oom_kill).
    pub fn oom_kills(&self) -> Option<u64> {
        let m = self.memory.as_ref()?;
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill"),
            Version::V2 => ("memory.events", "oom_kill"),
        };
        keyed_value(&std::fs::read_to_string(m.join(file)).ok()?, key)
    }

    /// CPU time used, in ns (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec).
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        match self.version {
            Version::V1 => read_u64(&self.cpuacct.as_ref()?.join("cpuacct.usage")),
            Version::V2 => {
                let d = self.cpu.as_ref().or(self.memory.as_ref())?;
                keyed_value(
                    &std::fs::read_to_string(d.join("cpu.stat")).ok()?,
                    "usage_usec",
                )
                .map(|us| us * 1000)
            }
        }
    }

    /// Processes in the cgroup (host pids).
    pub fn pids(&self) -> Vec<i32> {
        self.dirs
            .first()
            .map(|d| read_pids(&d.join("cgroup.procs")))
            .unwrap_or_default()
    }

    /// Thaws, SIGKILLs everything left and removes the directories. Returns
    /// true once they are gone; false if processes are still exiting (call
    /// again a little later).
    pub fn try_destroy(&self) -> bool {
        let _ = self.thaw();
        if self.version == Version::V2
            && let Some(d) = self.dirs.first()
            && d.join("cgroup.kill").exists()
        {
            let _ = write_file(&d.join("cgroup.kill"), "1");
        }
        for pid in self.pids() {
            // SAFETY: kill(2) on a pid read from our own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        self.remove_dirs()
    }

    fn remove_dirs(&self) -> bool {
        let mut ok = true;
        for d in &self.dirs {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => ok = false,
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_in_proportion_to_memory() {
        // AWS: 1,769 MB = one vCPU; 10,240 MB = six vCPUs.
        assert!((vcpus_for_memory(1769) - 1.0).abs() < 1e-9);
        assert!((vcpus_for_memory(10240) - 6.0).abs() < 1e-9);
        assert!((vcpus_for_memory(885) - 0.5).abs() < 0.001);
        assert_eq!(cpu_quota_us(1769, 8), 100_000);
        assert_eq!(cpu_quota_us(885, 8), 50_028);
        assert_eq!(cpu_quota_us(128, 8), 7_236);
        assert_eq!(cpu_quota_us(10240, 8), 600_000);
        // Capped by the host's cores.
        assert_eq!(cpu_quota_us(10240, 2), 200_000);
        assert_eq!(cpu_quota_us(3538, 1), 100_000);
        // Monotonic and never below the kernel's minimum.
        let mut last = 0;
        for mb in (128..=10240).step_by(64) {
            let q = cpu_quota_us(mb, 64);
            assert!(q >= last && q >= MIN_CPU_QUOTA_US);
            last = q;
        }
    }

    #[test]
    fn mountinfo_controllers() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:38 / /mnt/with\\040space rw,relatime - tmpfs tmpfs rw
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 8);
        assert_eq!(m[7].mount_point, PathBuf::from("/mnt/with space"));
        let v1 = v1_mounts(&m);
        let get = |c| {
            v1.iter()
                .find(|(x, _)| *x == c)
                .map(|(_, p)| p.to_string_lossy().into_owned())
        };
        assert_eq!(
            get(Controller::Cpu).as_deref(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            get(Controller::Cpuacct).as_deref(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            get(Controller::Memory).as_deref(),
            Some("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            get(Controller::Pids).as_deref(),
            Some("/sys/fs/cgroup/pids")
        );
        assert_eq!(v2_mount(&m), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        // A v2-only host.
        let v2 =
            parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(v1_mounts(&v2).is_empty());
        assert_eq!(v2_mount(&v2), Some(PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn keyed_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(v1, "oom_kill"), Some(3));
        assert_eq!(keyed_value(v1, "oom"), None);
        let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(1));
        let stat = "usage_usec 123456\nuser_usec 100000\n";
        assert_eq!(keyed_value(stat, "usage_usec"), Some(123456));
    }

    #[test]
    fn instance_names() {
        let me = std::process::id();
        let name = instance_name(me);
        assert!(name.starts_with(&format!("{me}-")));
        assert!(instance_alive(&name));
        assert!(!instance_alive(&format!("{me}-1")));
        assert!(!instance_alive("not-a-pid"));
        assert!(!instance_alive("4194305-1"));
    }
}
