//! Isolation of execution environments: the `process` and `namespace` modes,
//! the sandbox init helper, the root view, the unprivileged user and the
//! seccomp filter.
//!
//! ## `namespace` mode, process by process
//!
//! The server spawns its own binary as a helper (`stratus __sandbox-init`)
//! with the environment's configuration on stdin. Three processes make up
//! the environment, all in its cgroup and its process group:
//!
//! 1. **holder** (host PID namespace, child of the server): joins the
//!    cgroup (before exec), ignores SIGTERM/SIGINT/SIGHUP, unshares the
//!    mount, PID, IPC and UTS namespaces and forks the init. It waits for it
//!    and exits the way the runtime did (same exit code, or killed by the
//!    same signal), so the server sees the runtime's own exit status.
//! 2. **init** (PID 1 of the new PID namespace): builds the root view,
//!    forks the runtime, forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/
//!    SIGUSR2 to it, reaps every orphan, and exits when the runtime exits,
//!    which makes the kernel kill whatever is left in the namespace. It dies
//!    with the holder (`PR_SET_PDEATHSIG`), which dies with the server.
//! 3. **runtime**: drops to the environment's own uid/gid with no supplementary
//!    groups and no capabilities, sets `no_new_privs`, installs the seccomp
//!    filter and execs the runtime program.
//!
//! A re-exec rather than a `pre_exec` hook because a new PID namespace only
//! applies to the children of the process that unshares it, and PID 1 must
//! be a process that reaps and forwards signals: the holder and the init
//! are ordinary single-threaded programs, free of the async-signal-safety
//! rules of a hook that runs between fork and exec in the threaded server.
//!
//! The root view is a fresh tmpfs (read-only once built) holding read-only
//! recursive binds of the host's `/usr`, `/etc` (and `/bin`, `/sbin`,
//! `/lib*`, as the symlinks or directories they are on the host), the
//! interpreter's install prefix when it lives elsewhere (pyenv, nvm), the
//! runtime bootstraps at `/var/runtime` (the provided SDKs at
//! `/var/runtime/sdk`), the function's code at `/var/task` and the layers at
//! `/opt` (an empty directory without layers); `/tmp` is a private tmpfs of
//! EphemeralStorage MB, `/proc` belongs to the new PID namespace and `/dev`
//! has null, zero, full, random, urandom and tty. The server's data
//! directory, other functions' code and the host's processes are not in it.
//!
//! There is no new network namespace: the runtime reaches its Runtime API
//! on `127.0.0.1:<port>` of the host, and functions keep outbound network
//! access as on AWS.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
pub use stratus_core::config::Isolation;

use crate::cgroup::CgroupRoot;
use crate::runtime::Family;

/// argv[1] that makes the `stratus` binary run as the sandbox helper.
pub const INIT_ARG: &str = "__sandbox-init";
/// AWS's uid for `sbx_user1051`. In `namespace` mode each environment gets
/// a uid of its own instead ([`next_environment_uid`]); this one is only the
/// placeholder of a spec in `process` mode.
pub const SANDBOX_UID: u32 = 993;
/// `LAMBDA_TASK_ROOT` inside a namespace environment.
pub const TASK_ROOT: &str = "/var/task";
/// `LAMBDA_RUNTIME_DIR` inside a namespace environment.
pub const RUNTIME_DIR: &str = "/var/runtime";
/// Where the SDKs stratus provides are mounted inside.
pub const SDK_DIR: &str = "/var/runtime/sdk";
/// Host directories given to every namespace environment read-only (as
/// symlinks where the host has symlinks, e.g. merged /usr).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc",
];
/// Hostname inside namespace environments.
pub const HOSTNAME: &str = "localhost";

/// One element of a namespace environment's root view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// Recursive read-only bind of a host path.
    Bind { src: PathBuf, dst: PathBuf },
    /// A symlink.
    Symlink { target: PathBuf, dst: PathBuf },
    /// An empty directory.
    Dir { dst: PathBuf },
    /// A private tmpfs (`size_mb`, octal `mode`).
    Tmpfs {
        dst: PathBuf,
        size_mb: u32,
        mode: u32,
    },
    /// procfs of the environment's PID namespace.
    Proc { dst: PathBuf },
    /// A minimal /dev.
    Dev { dst: PathBuf },
    /// A read-only file with these contents, bound over `dst` (which must
    /// exist in the view), e.g. /etc/passwd with the sandbox user added.
    File { dst: PathBuf, contents: String },
}

/// The isolation part of an [`crate::EnvSpec`].
#[derive(Debug, Clone, Default)]
pub struct IsolationSpec {
    /// `process` or `namespace`.
    pub mode: Isolation,
    /// MemorySize in MB (cgroup memory limit; CPU follows it).
    pub memory_mb: u32,
    /// EphemeralStorage in MB (`/tmp` size in namespace mode).
    pub ephemeral_mb: u32,
    /// The function's unpacked code (mounted at /var/task).
    pub code_dir: PathBuf,
    /// Merged layers (mounted at /opt); `None`: an empty /opt.
    pub opt_dir: Option<PathBuf>,
    /// The server's cgroup tree, when the host has usable cgroups.
    pub cgroups: Option<Arc<CgroupRoot>>,
    /// Host directory the new root is mounted on (namespace mode).
    pub root_dir: PathBuf,
    /// The root view (namespace mode), in mount order.
    pub mounts: Vec<Mount>,
    /// The unprivileged uid (and gid) the runtime runs as. Each environment
    /// gets its own, so its Runtime API can tell its own connections from
    /// another environment's (see [`peer_uid`]).
    pub uid: u32,
}

/// First and last uid handed to environments (namespace mode).
const ENV_UID_FIRST: u32 = 20_000;
const ENV_UID_LAST: u32 = 59_999;

/// A uid for a new environment, cycling through a range no host account
/// uses by convention.
pub fn next_environment_uid() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ENV_UID_FIRST + n % (ENV_UID_LAST - ENV_UID_FIRST + 1)
}

/// The uid owning the client end of a loopback TCP connection from
/// `peer` to local port `local_port`, read from `/proc/net/tcp` (the
/// connection's client socket has local address `peer` and remote port
/// `local_port`). `None` if it cannot be found.
pub fn peer_uid(peer: std::net::SocketAddr, local_port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 {
            continue;
        }
        if port_of(cols[1]) == Some(peer.port()) && port_of(cols[2]) == Some(local_port) {
            return cols[7].parse().ok();
        }
    }
    None
}

/// What the helper needs, sent as JSON on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    pub root: PathBuf,
    pub mounts: Vec<Mount>,
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    pub cwd: PathBuf,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub seccomp: bool,
}

/// The server's isolation setup: the effective mode, the cgroup tree and
/// the host paths environments get.
#[derive(Debug)]
pub struct Sandbox {
    mode: Isolation,
    cgroups: Option<Arc<CgroupRoot>>,
    root_dir: PathBuf,
    runtime_dir: PathBuf,
    sdk_dir: PathBuf,
    extra_paths: Vec<PathBuf>,
    warnings: Vec<String>,
}

impl Sandbox {
    /// `process` mode without cgroups (library tests, hosts without
    /// privileges).
    pub fn plain() -> Sandbox {
        Sandbox {
            mode: Isolation::Process,
            cgroups: None,
            root_dir: PathBuf::new(),
            runtime_dir: PathBuf::new(),
            sdk_dir: PathBuf::new(),
            extra_paths: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Probes the host and prepares isolation: cgroups (v1 or v2) when
    /// they can be created, namespaces when they can be unshared.
    /// `requested: None` picks `namespace` if both work, else `process` with
    /// a warning.
    ///
    /// Errors: `namespace` was asked for and the host cannot do it.
    pub fn setup(
        requested: Option<Isolation>,
        data_dir: &Path,
        runtime_dir: &Path,
        sdk_dir: &Path,
        extra_paths: &[PathBuf],
    ) -> Result<Sandbox, String> {
        let mut warnings = Vec::new();
        let cgroups = match CgroupRoot::setup(&crate::cgroup::instance_name(std::process::id())) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                warnings.push(format!(
                    "cgroups unavailable ({e}): memory, CPU and task limits are not enforced and idle environments are not frozen"
                ));
                None
            }
        };
        let ns = probe_namespaces();
        let mode = match (requested, &ns) {
            (Some(Isolation::Namespace), Err(e)) => {
                if let Some(c) = &cgroups {
                    c.destroy();
                }
                return Err(format!(
                    "--isolation namespace is not possible on this host: {e}"
                ));
            }
            (Some(m), _) => m,
            (None, Ok(())) if cgroups.is_some() => Isolation::Namespace,
            (None, Ok(())) => {
                warnings
                    .push("isolation falls back to process mode: cgroups are unavailable".into());
                Isolation::Process
            }
            (None, Err(e)) => {
                warnings.push(format!(
                    "isolation falls back to process mode (functions run as plain child processes that can see the host): {e}"
                ));
                Isolation::Process
            }
        };
        let root_dir = data_dir.join("sandbox").join("root");
        if mode == Isolation::Namespace {
            std::fs::create_dir_all(&root_dir)
                .map_err(|e| format!("cannot create {}: {e}", root_dir.display()))?;
            // Mount point of the provided SDKs inside /var/runtime.
            std::fs::create_dir_all(runtime_dir.join("sdk"))
                .map_err(|e| format!("cannot create {}/sdk: {e}", runtime_dir.display()))?;
        }
        Ok(Sandbox {
            mode,
            cgroups,
            root_dir,
            runtime_dir: runtime_dir.to_path_buf(),
            sdk_dir: sdk_dir.to_path_buf(),
            extra_paths: extra_paths.to_vec(),
            warnings,
        })
    }

    /// The effective mode.
    pub fn mode(&self) -> Isolation {
        self.mode
    }

    /// The cgroup tree, if cgroups are in use.
    pub fn cgroups(&self) -> Option<&Arc<CgroupRoot>> {
        self.cgroups.as_ref()
    }

    /// Warnings to print at start.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Removes the server's cgroups (and kills anything left in them).
    pub fn destroy(&self) {
        if let Some(c) = &self.cgroups {
            c.destroy();
        }
    }

    /// The isolation settings of one environment.
    ///
    /// `interpreter` is the program serving the runtime (`None` for provided
    /// runtimes); in namespace mode it is resolved to an absolute path (the
    /// returned string) and its install prefix is added to the root view.
    ///
    /// Errors: the interpreter cannot be located.
    pub fn spec(
        &self,
        memory_mb: u32,
        ephemeral_mb: u32,
        code_dir: &Path,
        opt_dir: Option<&Path>,
        family: Family,
        interpreter: Option<&str>,
    ) -> Result<(IsolationSpec, Option<String>), String> {
        let mut spec = IsolationSpec {
            mode: self.mode,
            memory_mb,
            ephemeral_mb,
            code_dir: code_dir.to_path_buf(),
            opt_dir: opt_dir.map(Path::to_path_buf),
            cgroups: self.cgroups.clone(),
            root_dir: self.root_dir.clone(),
            mounts: Vec::new(),
            uid: SANDBOX_UID,
        };
        if self.mode == Isolation::Process {
            return Ok((spec, interpreter.map(str::to_string)));
        }
        let uid = next_environment_uid();
        spec.uid = uid;
        let mut m = system_mounts();
        // /tmp comes first, so an interpreter installed below /tmp (a venv
        // in a checkout under /tmp, say) is bound on top of it, not hidden.
        m.push(Mount::Tmpfs {
            dst: "/tmp".into(),
            size_mb: ephemeral_mb.max(1),
            mode: 0o1777,
        });
        let mut exe = None;
        if let Some(i) = interpreter {
            let (path, prefixes) = interpreter_location(family, i)?;
            for p in prefixes {
                m.push(Mount::Bind {
                    src: p.clone(),
                    dst: p,
                });
            }
            exe = Some(path);
        }
        for p in &self.extra_paths {
            if p.exists() && !covered(p) {
                m.push(Mount::Bind {
                    src: p.clone(),
                    dst: p.clone(),
                });
            }
        }
        m.push(Mount::Bind {
            src: self.runtime_dir.clone(),
            dst: RUNTIME_DIR.into(),
        });
        if self.sdk_dir.is_dir() {
            m.push(Mount::Bind {
                src: self.sdk_dir.clone(),
                dst: SDK_DIR.into(),
            });
        }
        m.push(Mount::Bind {
            src: code_dir.to_path_buf(),
            dst: TASK_ROOT.into(),
        });
        match opt_dir {
            Some(o) => m.push(Mount::Bind {
                src: o.to_path_buf(),
                dst: "/opt".into(),
            }),
            None => m.push(Mount::Dir { dst: "/opt".into() }),
        }
        m.push(Mount::Proc {
            dst: "/proc".into(),
        });
        m.push(Mount::Dev { dst: "/dev".into() });
        // The sandbox user has a name and a home, as sbx_user1051 on AWS
        // (Node.js's os.homedir() and Python's pwd need one).
        for (file, line) in [
            (
                "/etc/passwd",
                format!("sbx_user1051:x:{uid}:{uid}::/home/sbx_user1051:/sbin/nologin"),
            ),
            ("/etc/group", format!("sbx_user1051:x:{uid}:")),
        ] {
            if let Some(contents) = with_sandbox_user(file, &line, uid) {
                m.push(Mount::File {
                    dst: file.into(),
                    contents,
                });
            }
        }
        spec.mounts = m;
        Ok((spec, exe))
    }
}

/// The host's `file` (passwd or group) plus `line`, unless an entry for the
/// sandbox id is there already; `None` if the host has no such file.
fn with_sandbox_user(file: &str, line: &str, uid: u32) -> Option<String> {
    let host = std::fs::read_to_string(file).ok()?;
    let uid = uid.to_string();
    if host
        .lines()
        .any(|l| l.split(':').nth(2) == Some(uid.as_str()))
    {
        return None;
    }
    let mut out = host;
    if !out.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    Some(out)
}

/// The host's system directories as they are: read-only binds, or the
/// same symlinks (`/lib -> usr/lib` on merged-/usr systems).
pub fn system_mounts() -> Vec<Mount> {
    let mut out = Vec::new();
    for d in SYSTEM_DIRS {
        let p = Path::new(d);
        match std::fs::symlink_metadata(p) {
            Ok(md) if md.file_type().is_symlink() => {
                if let Ok(t) = std::fs::read_link(p) {
                    out.push(Mount::Symlink {
                        target: t,
                        dst: p.into(),
                    });
                }
            }
            Ok(md) if md.is_dir() => out.push(Mount::Bind {
                src: p.into(),
                dst: p.into(),
            }),
            _ => {}
        }
    }
    out
}

/// True if `p` lies under one of the system directories already mounted.
fn covered(p: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|d| p.starts_with(d))
}

/// The install prefix of a program: the parent of its `bin` directory, or
/// its directory.
pub fn install_prefix(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "bin") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// Host directories to mount so that `paths` (executables and prefixes)
/// work inside: outside the system dirs, deduplicated, nested ones dropped.
pub fn prefixes_to_mount(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.is_absolute() && p.as_os_str().len() > 1 && !covered(p))
        .cloned()
        .collect();
    v.sort();
    v.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in v {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p);
        }
    }
    out
}

/// An interpreter's absolute path and the host directories it needs.
type Location = Result<(String, Vec<PathBuf>), String>;

fn location_cache() -> &'static Mutex<HashMap<String, Location>> {
    static C: OnceLock<Mutex<HashMap<String, Location>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Where an interpreter really is: its absolute path (as the interpreter
/// reports it, so a virtualenv stays a virtualenv) and the host
/// directories that must be visible for it to run. Cached.
pub fn interpreter_location(
    family: Family,
    program: &str,
) -> Result<(String, Vec<PathBuf>), String> {
    let key = format!("{family:?} {program}");
    if let Some(v) = location_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return v.clone();
    }
    let args: &[&str] = match family {
        Family::Python => &[
            "-c",
            "import sys;print(sys.executable);print(sys.prefix);print(sys.base_prefix)",
        ],
        Family::Node => &["-p", "process.execPath"],
        Family::Provided => &[],
    };
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let res = match out {
        None => Err(format!(
            "the interpreter '{program}' does not run on this host"
        )),
        Some(text) => {
            let lines: Vec<PathBuf> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect();
            match lines.first() {
                Some(exe) if exe.is_absolute() => {
                    let mut want: Vec<PathBuf> = Vec::new();
                    want.extend(install_prefix(exe));
                    if let Ok(real) = std::fs::canonicalize(exe) {
                        want.extend(install_prefix(&real));
                    }
                    want.extend(lines.iter().skip(1).cloned());
                    Ok((exe.to_string_lossy().into_owned(), prefixes_to_mount(&want)))
                }
                _ => Err(format!(
                    "cannot tell where the interpreter '{program}' is installed"
                )),
            }
        }
    };
    location_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, res.clone());
    res
}

/// Raises the soft limit on open files to the hard limit.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// MemTotal and MemAvailable from /proc/meminfo, in MB.
pub fn host_memory_mb() -> Option<(u64, u64)> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// MemTotal and MemAvailable (MB) from the text of /proc/meminfo.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kb = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some((kb("MemTotal")? / 1024, kb("MemAvailable")? / 1024))
}

/// Can this host unshare mount, PID, IPC and UTS namespaces and mount in
/// them? Runs the helper in probe mode.
pub fn probe_namespaces() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("namespaces and mounts need root (the server runs unprivileged)".into());
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the stratus binary: {e}"))?;
    let out = std::process::Command::new("/proc/self/exe")
        .args([INIT_ARG, "--probe"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if msg.is_empty() {
            format!("the namespace probe failed ({})", out.status)
        } else {
            msg
        })
    }
}

// --------------------------------------------------------------------------
// The helper (runs in its own process, single-threaded).
// --------------------------------------------------------------------------

fn errno_msg(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| format!("path has a NUL byte: {}", p.display()))
}

fn sys_mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let s = src.map(cstr).transpose()?;
    let d = cstr(dst)?;
    let f = fstype.map(|t| CString::new(t).unwrap_or_default());
    let dt = data.map(|t| CString::new(t).unwrap_or_default());
    // SAFETY: every pointer is a valid NUL-terminated string or null.
    let rc = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            d.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            dt.as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
        )
    };
    if rc != 0 {
        return Err(errno_msg(&format!(
            "mount {} on {}",
            src.map(|p| p.display().to_string())
                .unwrap_or_else(|| fstype.unwrap_or("-").to_string()),
            dst.display()
        )));
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Makes a bind mount and everything under it read-only, nosuid, nodev
/// (mount_setattr, Linux 5.12+; older kernels: the top mount only).
fn make_readonly(dst: &Path) -> Result<(), String> {
    let d = cstr(dst)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size` bytes of `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            d.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    sys_mount(
        None,
        dst,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}

fn inside(root: &Path, dst: &Path) -> PathBuf {
    root.join(dst.strip_prefix("/").unwrap_or(dst))
}

fn touch(p: &Path) -> Result<(), String> {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map(|_| ())
        .map_err(|e| format!("create {}: {e}", p.display()))
}

fn mkdirs(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

/// Builds the root view under `cfg.root` and pivots into it (init, in the
/// new mount and PID namespaces).
fn build_root(cfg: &InitConfig) -> Result<(), String> {
    sys_mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let root = &cfg.root;
    sys_mount(
        Some(Path::new("tmpfs")),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=4m,nr_inodes=16384,mode=755"),
    )?;
    let staging = root.join(".stratus-files");
    let mut files = 0;
    for m in &cfg.mounts {
        match m {
            Mount::Bind { src, dst } => {
                let t = inside(root, dst);
                let md = std::fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
                if md.is_dir() {
                    mkdirs(&t)?;
                } else {
                    touch(&t)?;
                }
                sys_mount(Some(src), &t, None, libc::MS_BIND | libc::MS_REC, None)?;
                make_readonly(&t)?;
            }
            Mount::Symlink { target, dst } => {
                let t = inside(root, dst);
                if let Some(p) = t.parent() {
                    mkdirs(p)?;
                }
                std::os::unix::fs::symlink(target, &t)
                    .map_err(|e| format!("symlink {}: {e}", t.display()))?;
            }
            Mount::Dir { dst } => mkdirs(&inside(root, dst))?,
            Mount::Tmpfs { dst, size_mb, mode } => {
                let t = inside(root, dst);
                mkdirs(&t)?;
                sys_mount(
                    Some(Path::new("tmpfs")),
                    &t,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(&format!("size={size_mb}m,mode={mode:o}")),
                )?;
            }
            Mount::Proc { dst } => {
                let t = inside(root, dst);
                mkdirs(&t)?;
                sys_mount(
                    Some(Path::new("proc")),
                    &t,
                    Some("proc"),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                )?;
            }
            Mount::Dev { dst } => {
                let t = inside(root, dst);
                mkdirs(&t)?;
                sys_mount(
                    Some(Path::new("tmpfs")),
                    &t,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    Some("size=64k,mode=755"),
                )?;
                for n in ["null", "zero", "full", "random", "urandom", "tty"] {
                    let host = Path::new("/dev").join(n);
                    if !host.exists() {
                        continue;
                    }
                    let f = t.join(n);
                    touch(&f)?;
                    sys_mount(Some(&host), &f, None, libc::MS_BIND, None)?;
                }
                for (name, target) in [
                    ("fd", "/proc/self/fd"),
                    ("stdin", "/proc/self/fd/0"),
                    ("stdout", "/proc/self/fd/1"),
                    ("stderr", "/proc/self/fd/2"),
                ] {
                    std::os::unix::fs::symlink(target, t.join(name))
                        .map_err(|e| format!("symlink /dev/{name}: {e}"))?;
                }
            }
            Mount::File { dst, contents } => {
                // Written in a staging tmpfs and bound over the target; the
                // staging mount goes away below (the binds keep the files).
                if !staging.exists() {
                    mkdirs(&staging)?;
                    sys_mount(
                        Some(Path::new("tmpfs")),
                        &staging,
                        Some("tmpfs"),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        Some("size=1m,mode=755"),
                    )?;
                }
                files += 1;
                let src = staging.join(files.to_string());
                std::fs::write(&src, contents)
                    .map_err(|e| format!("write {}: {e}", src.display()))?;
                let t = inside(root, dst);
                sys_mount(Some(&src), &t, None, libc::MS_BIND, None)?;
                make_readonly(&t)?;
            }
        }
    }
    if staging.exists() {
        let c = cstr(&staging)?;
        // SAFETY: umount2/rmdir with a valid C string.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            libc::rmdir(c.as_ptr());
        }
    }
    // Switch to the new root and drop every host mount from this namespace.
    let old = root.join(".old-root");
    mkdirs(&old)?;
    let r = cstr(root)?;
    // SAFETY: chdir/pivot_root/umount2/rmdir with valid C strings.
    unsafe {
        if libc::chdir(r.as_ptr()) != 0 {
            return Err(errno_msg("chdir to the new root"));
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".old-root".as_ptr()) != 0 {
            return Err(errno_msg("pivot_root"));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(errno_msg("chdir /"));
        }
        if libc::umount2(c"/.old-root".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(errno_msg("unmount the host root"));
        }
        libc::rmdir(c"/.old-root".as_ptr());
    }
    sys_mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    Ok(())
}

/// Syscalls a function never needs; they fail with EPERM.
fn denied_syscalls() -> Vec<i64> {
    let mut v: Vec<libc::c_long> = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_ptrace,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_vhangup,
        libc::SYS_userfaultfd,
        libc::SYS_pidfd_getfd,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS_nfsservctl,
        libc::SYS_lookup_dcookie,
    ]);
    // seccompiler's targets are 64-bit: a syscall number is an i64 there.
    v
}

/// Namespace flags `clone` may not be called with.
const CLONE_NS_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
];

/// The seccomp programs: denied syscalls (and clone with namespace flags)
/// return EPERM; clone3, whose flags a filter cannot read, returns ENOSYS so
/// that libc falls back to clone.
pub fn seccomp_programs() -> Result<Vec<seccompiler::BpfProgram>, String> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e:?}"))?;
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|n| (n, Vec::new()))
        .collect();
    let mut clone_rules = Vec::new();
    for f in CLONE_NS_FLAGS {
        let f = *f as u64;
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(f), f)
            .map_err(|e| format!("seccomp: {e:?}"))?;
        clone_rules.push(SeccompRule::new(vec![cond]).map_err(|e| format!("seccomp: {e:?}"))?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e:?}"))?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e:?}"))?;
    let a: seccompiler::BpfProgram = deny.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    let b: seccompiler::BpfProgram = clone3.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    Ok(vec![a, b])
}

/// Entry point of the helper process: `stratus __sandbox-init [--probe]`.
/// Returns the exit code (or does not return: it may exit through the
/// runtime's own fatal signal).
pub fn init_main(args: &[String]) -> i32 {
    if args.get(2).map(String::as_str) == Some("--probe") {
        return probe_main();
    }
    let mut buf = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
        eprintln!("stratus-sandbox: cannot read the configuration: {e}");
        return 127;
    }
    let cfg: InitConfig = match serde_json::from_slice(&buf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stratus-sandbox: bad configuration: {e}");
            return 127;
        }
    };
    // SAFETY: plain fd juggling in a single-threaded process.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::close(fd);
        }
    }
    match holder(&cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stratus-sandbox: {e}");
            127
        }
    }
}

fn probe_main() -> i32 {
    // SAFETY: unshare/fork/waitpid/mount in a single-threaded process.
    unsafe {
        if libc::unshare(
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS,
        ) != 0
        {
            eprintln!(
                "{}",
                errno_msg("cannot unshare mount, PID, IPC and UTS namespaces")
            );
            return 1;
        }
        let pid = libc::fork();
        if pid < 0 {
            eprintln!("{}", errno_msg("fork in a new PID namespace"));
            return 1;
        }
        if pid == 0 {
            let r = sys_mount(
                None,
                Path::new("/"),
                None,
                libc::MS_REC | libc::MS_PRIVATE,
                None,
            )
            .and_then(|_| {
                sys_mount(
                    Some(Path::new("proc")),
                    Path::new("/proc"),
                    Some("proc"),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                )
            });
            match r {
                Ok(()) => libc::_exit(0),
                Err(e) => {
                    eprintln!("cannot mount in a new mount namespace: {e}");
                    libc::_exit(1)
                }
            }
        }
        let mut st = 0;
        while libc::waitpid(pid, &mut st, 0) < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return 1;
            }
        }
        if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            1
        }
    }
}

const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

static RUNTIME_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = RUNTIME_PID.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn set_oom_score_adj(v: &str) {
    let _ = std::fs::write("/proc/self/oom_score_adj", v);
}

/// The exit status that reproduces a child's wait status `st`: its exit
/// code, or (after re-raising the same signal on ourselves) 128 + signal.
pub(crate) fn mirror(st: libc::c_int) -> i32 {
    if libc::WIFEXITED(st) {
        return libc::WEXITSTATUS(st);
    }
    if libc::WIFSIGNALED(st) {
        let sig = libc::WTERMSIG(st);
        // SAFETY: restoring the default action and raising the signal on
        // ourselves in a single-threaded process.
        unsafe {
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &lim);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
        }
        return 128 + sig;
    }
    1
}

/// The holder: unshare, fork the init, wait, mirror the runtime's status.
fn holder(cfg: &InitConfig) -> Result<i32, String> {
    // SAFETY: signal dispositions and namespace syscalls in a
    // single-threaded process.
    unsafe {
        for s in FORWARDED {
            libc::signal(*s, libc::SIG_IGN);
        }
    }
    set_oom_score_adj("-1000");
    // SAFETY: as above.
    if unsafe {
        libc::unshare(
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS,
        )
    } != 0
    {
        return Err(errno_msg("unshare"));
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno_msg("pipe"));
    }
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno_msg("fork"));
    }
    if pid == 0 {
        // SAFETY: prctl/close in the child.
        unsafe {
            libc::close(fds[0]);
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
        }
        let code = match init(cfg, fds[1]) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("stratus-sandbox: {e}");
                127
            }
        };
        // SAFETY: leaving the init process.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut st = 0;
    loop {
        // SAFETY: waiting for our child.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(errno_msg("waitpid"));
        }
    }
    let mut b = [0u8; 4];
    // SAFETY: reading into a 4-byte buffer.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr() as *mut libc::c_void, 4) };
    if n == 4 {
        return Ok(mirror(i32::from_ne_bytes(b)));
    }
    Ok(mirror(st))
}

/// Prepared exec arguments (built before fork).
struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    filters: Vec<seccompiler::BpfProgram>,
}

fn find_program(cmd: &str, env: &[(String, String)]) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| {
            cstr(p).is_ok_and(|c| {
                // SAFETY: access with a valid C string.
                unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
            })
        })
}

/// The init: PID 1 of the environment.
fn init(cfg: &InitConfig, status_fd: libc::c_int) -> Result<i32, String> {
    // SAFETY: umask and prctl(PR_SET_NAME) with a NUL-terminated name.
    unsafe {
        libc::umask(0o022);
        libc::prctl(libc::PR_SET_NAME, c"init".as_ptr(), 0, 0, 0);
    }
    build_root(cfg)?;
    let h = CString::new(cfg.hostname.clone()).unwrap_or_default();
    // SAFETY: valid buffer and length.
    unsafe { libc::sethostname(h.as_ptr(), cfg.hostname.len()) };
    let cmd0 = cfg.command.first().ok_or("empty command")?;
    let path = find_program(cmd0, &cfg.env).ok_or_else(|| format!("{cmd0}: not found"))?;
    let exec = Exec {
        path: cstr(&path)?,
        argv: cfg
            .command
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| "argument with a NUL byte".to_string()))
            .collect::<Result<_, _>>()?,
        envp: cfg
            .env
            .iter()
            .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
            .collect(),
        cwd: cstr(&cfg.cwd)?,
        filters: if cfg.seccomp {
            seccomp_programs()?
        } else {
            Vec::new()
        },
    };
    // SAFETY: installing plain handlers in a single-threaded process.
    unsafe {
        for s in FORWARDED {
            libc::signal(*s, forward as *const () as libc::sighandler_t);
        }
    }
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno_msg("fork the runtime"));
    }
    if pid == 0 {
        let e = exec_runtime(cfg, &exec);
        eprintln!("stratus-sandbox: {e}");
        // SAFETY: leaving the failed child.
        unsafe { libc::_exit(127) };
    }
    RUNTIME_PID.store(pid, std::sync::atomic::Ordering::SeqCst);
    loop {
        let mut st = 0;
        // SAFETY: reaping any child (we are PID 1 of the namespace).
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r == pid {
            let b = st.to_ne_bytes();
            // SAFETY: writing 4 bytes to the status pipe.
            unsafe { libc::write(status_fd, b.as_ptr() as *const libc::c_void, 4) };
            return Ok(0);
        }
        if r < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => return Ok(127),
            }
        }
    }
}

/// The runtime child: drop privileges, seccomp, exec. Returns only on error.
fn exec_runtime(cfg: &InitConfig, e: &Exec) -> String {
    set_oom_score_adj("0");
    // SAFETY: process-attribute syscalls in a single-threaded child, then
    // execve with NUL-terminated arrays that outlive the call.
    unsafe {
        for s in FORWARDED {
            libc::signal(*s, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        if libc::chdir(e.cwd.as_ptr()) != 0 {
            return errno_msg(&format!("chdir {}", cfg.cwd.display()));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return errno_msg("setgroups");
        }
        if libc::setresgid(cfg.gid, cfg.gid, cfg.gid) != 0 {
            return errno_msg("setgid");
        }
        if libc::setresuid(cfg.uid, cfg.uid, cfg.uid) != 0 {
            return errno_msg("setuid");
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return errno_msg("no_new_privs");
        }
        for f in &e.filters {
            if let Err(err) = seccompiler::apply_filter(f) {
                return format!("seccomp: {err:?}");
            }
        }
        let mut argv: Vec<*const libc::c_char> = e.argv.iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = e.envp.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        libc::execve(e.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    errno_msg(&format!("cannot run {}", e.path.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            install_prefix(Path::new("/root/.pyenv/versions/3.12.1/bin/python3.12")),
            Some(PathBuf::from("/root/.pyenv/versions/3.12.1"))
        );
        assert_eq!(
            install_prefix(Path::new("/opt/node/node")),
            Some(PathBuf::from("/opt/node"))
        );
        let got = prefixes_to_mount(&[
            "/root/.pyenv/versions/3.12.1".into(),
            "/root/.pyenv/versions/3.12.1/lib".into(),
            "/usr/local".into(),
            "/usr".into(),
            "relative".into(),
            "/".into(),
            "/work/venv".into(),
            "/root/.pyenv/versions/3.12.1".into(),
        ]);
        assert_eq!(
            got,
            vec![
                PathBuf::from("/root/.pyenv/versions/3.12.1"),
                PathBuf::from("/work/venv")
            ]
        );
    }

    #[test]
    fn system_view_has_usr_and_etc() {
        let m = system_mounts();
        assert!(
            m.iter()
                .any(|x| matches!(x, Mount::Bind { dst, .. } if dst == Path::new("/usr")))
        );
        assert!(
            m.iter()
                .any(|x| matches!(x, Mount::Bind { dst, .. } if dst == Path::new("/etc")))
        );
    }

    #[test]
    fn namespace_spec_layout() {
        let sb = Sandbox {
            mode: Isolation::Namespace,
            cgroups: None,
            root_dir: "/data/sandbox/root".into(),
            runtime_dir: "/data/runtime".into(),
            sdk_dir: "/nonexistent/sdk".into(),
            extra_paths: vec!["/usr/share".into()],
            warnings: vec![],
        };
        let (spec, exe) = sb
            .spec(
                256,
                1024,
                Path::new("/data/code/abc"),
                None,
                Family::Provided,
                None,
            )
            .unwrap();
        assert_eq!(exe, None);
        let dsts: Vec<String> = spec
            .mounts
            .iter()
            .map(|m| match m {
                Mount::Bind { dst, .. }
                | Mount::Symlink { dst, .. }
                | Mount::Dir { dst }
                | Mount::Tmpfs { dst, .. }
                | Mount::Proc { dst }
                | Mount::Dev { dst }
                | Mount::File { dst, .. } => dst.to_string_lossy().into_owned(),
            })
            .collect();
        for want in [
            "/usr",
            "/etc",
            "/var/runtime",
            "/var/task",
            "/opt",
            "/tmp",
            "/proc",
            "/dev",
        ] {
            assert!(
                dsts.iter().any(|d| d == want),
                "{want} missing from {dsts:?}"
            );
        }
        // /usr/share is already inside /usr; the SDK dir does not exist.
        assert!(!dsts.iter().any(|d| d == "/usr/share" || d == SDK_DIR));
        assert!(spec.mounts.contains(&Mount::Tmpfs {
            dst: "/tmp".into(),
            size_mb: 1024,
            mode: 0o1777
        }));
        assert!(spec.mounts.contains(&Mount::Bind {
            src: "/data/code/abc".into(),
            dst: "/var/task".into()
        }));
        // The data dir itself is never mounted.
        assert!(
            !spec
                .mounts
                .iter()
                .any(|m| matches!(m, Mount::Bind { src, .. } if src == Path::new("/data")))
        );
    }

    #[test]
    fn meminfo() {
        let t = "MemTotal:       24683652 kB\nMemFree:        19910000 kB\nMemAvailable:   23691264 kB\n";
        assert_eq!(parse_meminfo(t), Some((24105, 23136)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert!(host_memory_mb().is_some_and(|(t, a)| t > 0 && a <= t));
    }

    #[test]
    fn seccomp_compiles() {
        let p = seccomp_programs().unwrap();
        assert_eq!(p.len(), 2);
        assert!(!p[0].is_empty() && !p[1].is_empty());
    }

    #[test]
    fn program_lookup() {
        let env = vec![("PATH".to_string(), "/nonexistent:/usr/bin:/bin".to_string())];
        assert_eq!(find_program("/x/y", &env), Some(PathBuf::from("/x/y")));
        let sh = find_program("sh", &env).unwrap();
        assert!(sh.ends_with("sh"));
        assert_eq!(find_program("no-such-program-here", &env), None);
    }
}
