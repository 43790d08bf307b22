//! The extensions launcher: `stratus __lambda-extensions --dir DIR
//! [--forward] -- RUNTIME_COMMAND...`, run inside the execution environment
//! in place of the runtime command when the function has external
//! extensions (see [`crate::extensions`]).
//!
//! 1. Starts every executable in `DIR` (sorted by name), each in its own
//!    process group, with the function's environment minus the runtime's own
//!    variables, its stdout and stderr read by the launcher and written to
//!    the environment's output as marked lines. Extensions die with the
//!    launcher (parent-death signal).
//! 2. Waits until the server says every extension has registered
//!    (`GET /2020-01-01/extension/_stratus/ready`), reporting extensions that
//!    exit (`POST .../_stratus/exited`).
//! 3. Starts the runtime command (same environment, stdout and stderr), and
//!    then exits the way the runtime does. After SIGTERM (the Shutdown
//!    phase) it first waits for the extensions to exit; the server kills
//!    whatever is left once the phase's time is up.
//!
//! With `--forward` (namespace mode, where the init signals only the
//! launcher) SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are
//! forwarded to the runtime; in process mode the server signals the whole
//! process group, the runtime included.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use crate::extensions::{EXT_LINE_MARKER, RUNTIME_ONLY_VARS};

static TERM: AtomicBool = AtomicBool::new(false);
static FORWARD: AtomicBool = AtomicBool::new(false);
static RUNTIME: AtomicI32 = AtomicI32::new(0);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

const SIGNALS: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGTERM {
        TERM.store(true, Ordering::SeqCst);
    }
    let pid = RUNTIME.load(Ordering::SeqCst);
    if FORWARD.load(Ordering::SeqCst) && pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
    wake();
}

extern "C" fn on_child(_: libc::c_int) {
    wake();
}

fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write is async-signal-safe; the pipe is non-blocking.
        unsafe { libc::write(fd, b"x".as_ptr() as *const libc::c_void, 1) };
    }
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: sigaction with a plain handler in a single-threaded process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

struct Running {
    name: String,
    pid: i32,
    out: Option<OwnedFd>,
    buf: Vec<u8>,
    alive: bool,
}

/// Entry point: returns the exit code (or does not return: it may exit
/// through the runtime's own fatal signal).
pub fn launcher_main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let mut dir = None;
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => {
                dir = args.get(i + 1).cloned();
                i += 2;
            }
            "--forward" => {
                FORWARD.store(true, Ordering::SeqCst);
                i += 1;
            }
            "--" => {
                i += 1;
                break;
            }
            _ => break,
        }
    }
    let command: Vec<String> = args[i.min(args.len())..].to_vec();
    let (Some(dir), false) = (dir, command.is_empty()) else {
        eprintln!(
            "stratus-extensions: usage: __lambda-extensions --dir DIR [--forward] -- COMMAND..."
        );
        return 127;
    };
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two fds.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        eprintln!(
            "stratus-extensions: pipe: {}",
            std::io::Error::last_os_error()
        );
        return 127;
    }
    WAKE_FD.store(pipe[1], Ordering::SeqCst);
    for s in SIGNALS {
        install(*s, on_signal);
    }
    install(libc::SIGCHLD, on_child);

    let mut exts = Vec::new();
    for path in extension_files(Path::new(&dir)) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match spawn_extension(&path) {
            Ok((pid, out)) => exts.push(Running {
                name,
                pid,
                out: Some(out),
                buf: Vec::new(),
                alive: true,
            }),
            Err(e) => {
                report(
                    &api,
                    &name,
                    &format!("launch: fork/exec {}: {e}", path.display()),
                );
            }
        }
    }

    // Extension init: the runtime starts once every extension has registered.
    loop {
        pump(&mut exts, pipe[0], 0);
        reap(&mut exts, &api, None);
        match http(&api, "GET", "/2020-01-01/extension/_stratus/ready", "") {
            Some((200, b)) if b.trim() == "ready" => break,
            Some((200, b)) if b.trim() == "wait" => {}
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }

    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let runtime = match cmd.spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => {
            eprintln!("stratus-extensions: cannot run {}: {e}", command[0]);
            return 127;
        }
    };
    RUNTIME.store(runtime, Ordering::SeqCst);
    if TERM.load(Ordering::SeqCst) && FORWARD.load(Ordering::SeqCst) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(runtime, libc::SIGTERM) };
    }
    let mut status = None;
    loop {
        reap(&mut exts, &api, Some((runtime, &mut status)));
        if let Some(st) = status {
            let waiting = TERM.load(Ordering::SeqCst) && exts.iter().any(|e| e.alive);
            if !waiting {
                pump(&mut exts, pipe[0], 0);
                flush_partial(&mut exts);
                return crate::isolation::mirror(st);
            }
        }
        pump(&mut exts, pipe[0], 1000);
    }
}

/// The executables in `dir`, sorted by name.
pub fn extension_files(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    std::fs::metadata(p)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn spawn_extension(path: &Path) -> std::io::Result<(i32, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w2 = w.try_clone()?;
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .envs(
            std::env::vars_os()
                .filter(|(k, _)| !RUNTIME_ONLY_VARS.iter().any(|v| k.to_str() == Some(*v))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2));
    // SAFETY: setpgid and prctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(cmd);
    // SAFETY: fcntl on our own fd.
    unsafe {
        let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok((child.id() as i32, r))
}

/// Waits up to `timeout_ms` for output or a signal, then copies what the
/// extensions printed to stdout as marked lines.
fn pump(exts: &mut [Running], wake_fd: i32, timeout_ms: i32) {
    let mut fds: Vec<libc::pollfd> = vec![libc::pollfd {
        fd: wake_fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    for e in exts.iter() {
        if let Some(o) = &e.out {
            fds.push(libc::pollfd {
                fd: o.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }
    // SAFETY: a valid array of pollfd.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    let mut junk = [0u8; 64];
    // SAFETY: reading the non-blocking wake pipe.
    while unsafe { libc::read(wake_fd, junk.as_mut_ptr() as *mut libc::c_void, junk.len()) } > 0 {}
    let mut stdout = std::io::stdout().lock();
    for e in exts.iter_mut() {
        let Some(o) = &e.out else { continue };
        let fd = o.as_raw_fd();
        let mut chunk = [0u8; 16 * 1024];
        let mut eof = false;
        loop {
            // SAFETY: reading into a buffer of the given length from our fd.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr() as *mut libc::c_void, chunk.len()) };
            if n > 0 {
                e.buf.extend_from_slice(&chunk[..n as usize]);
                continue;
            }
            if n == 0 {
                eof = true;
            } else if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        while let Some(pos) = e.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = e.buf.drain(..=pos).collect();
            write_marked(&mut stdout, &line[..line.len() - 1]);
        }
        // A very long line without a newline is passed on in pieces.
        while e.buf.len() >= 200 * 1024 {
            let piece: Vec<u8> = e.buf.drain(..200 * 1024).collect();
            write_marked(&mut stdout, &piece);
        }
        if eof {
            if !e.buf.is_empty() {
                let rest = std::mem::take(&mut e.buf);
                write_marked(&mut stdout, &rest);
            }
            e.out = None;
        }
    }
    let _ = stdout.flush();
}

fn flush_partial(exts: &mut [Running]) {
    let mut stdout = std::io::stdout().lock();
    for e in exts.iter_mut() {
        if !e.buf.is_empty() {
            let rest = std::mem::take(&mut e.buf);
            write_marked(&mut stdout, &rest);
        }
    }
    let _ = stdout.flush();
}

fn write_marked(out: &mut impl Write, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let _ = out.write_all(EXT_LINE_MARKER.as_bytes());
    let _ = out.write_all(line);
    let _ = out.write_all(b"\n");
}

/// Reaps exited children: extensions are reported to the server (unless
/// the environment is shutting down); the runtime's status is stored.
fn reap(exts: &mut [Running], api: &str, mut runtime: Option<(i32, &mut Option<libc::c_int>)>) {
    loop {
        let mut st = 0;
        // SAFETY: reaping our children without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if let Some((rt, status)) = runtime.as_mut()
            && pid == *rt
        {
            **status = Some(st);
            continue;
        }
        if let Some(e) = exts.iter_mut().find(|e| e.pid == pid && e.alive) {
            e.alive = false;
            if !TERM.load(Ordering::SeqCst) {
                report(api, &e.name, &describe(st));
            }
        }
    }
}

fn describe(st: libc::c_int) -> String {
    if libc::WIFEXITED(st) {
        match libc::WEXITSTATUS(st) {
            0 => "exit code 0".into(),
            n => format!("exit status {n}"),
        }
    } else if libc::WIFSIGNALED(st) {
        match libc::WTERMSIG(st) {
            libc::SIGKILL => "signal: killed".into(),
            libc::SIGTERM => "signal: terminated".into(),
            libc::SIGSEGV => "signal: segmentation fault".into(),
            n => format!("signal: {n}"),
        }
    } else {
        "exited".into()
    }
}

fn report(api: &str, name: &str, desc: &str) {
    let _ = http(
        api,
        "POST",
        "/2020-01-01/extension/_stratus/exited",
        &format!("{name}\n{desc}"),
    );
}

/// One HTTP/1.1 request to the environment's API (`Connection: close`):
/// status and body.
fn http(api: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(api).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&resp);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        assert_eq!(describe(0), "exit code 0");
        assert_eq!(describe(2 << 8), "exit status 2");
        assert_eq!(describe(libc::SIGKILL), "signal: killed");
    }

    #[test]
    fn only_executables_are_extensions() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("stratus-ext-{}", stratus_core::hex32()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("b-ext"), "#!/bin/sh\n").unwrap();
        std::fs::write(d.join("a-ext"), "#!/bin/sh\n").unwrap();
        std::fs::write(d.join("README"), "not an extension").unwrap();
        for n in ["a-ext", "b-ext"] {
            std::fs::set_permissions(d.join(n), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let names: Vec<String> = extension_files(&d)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a-ext", "b-ext"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
