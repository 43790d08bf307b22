//! Safe unpacking of Lambda deployment packages (`.zip` file archives).
//!
//! A deployment package is untrusted input: this module validates it the way
//! AWS Lambda does before any byte reaches the disk, then extracts it into a
//! fresh directory without ever writing outside of it.
//!
//! The limits follow the AWS Lambda quotas page,
//! <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>:
//! "Deployment package (.zip file archive) size: 50 MB (zipped, when uploading
//! directly), 250 MB (unzipped)".
//!
//! What is refused (see [`PackageError`]):
//! - empty input, input that is not a readable zip (central directory), encrypted
//!   entries and compression methods other than stored/deflate;
//! - more than [`MAX_ENTRIES`] entries;
//! - entry names that are absolute, contain a `..` component, a backslash, a NUL,
//!   a Windows drive letter, or that would be written through a symlink or a file;
//! - symlinks whose target is absolute or resolves outside the package root;
//! - a total unzipped size above the limit, checked against the sizes the archive
//!   declares *and* against the bytes really decompressed (zip bombs whose
//!   declared sizes lie).
//!
//! Extraction keeps the unix permission bits stored in the archive (the
//! executable bit of `bootstrap` matters); entries without unix mode get `0644`
//! (files) or `0755` (directories). Nothing else is added.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use zip::read::ZipFile;
use zip::{CompressionMethod, ExtraField, ZipArchive, ZipReadOptions};

/// Largest total unzipped size of a deployment package, in bytes (250 MiB).
///
/// AWS quota "Deployment package (.zip file archive) size: 250 MB (unzipped)",
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>.
/// Exceeding it yields [`PackageError::TooLarge`], whose AWS message is
/// "Unzipped size must be smaller than 262144000 bytes".
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

/// Largest zip archive accepted in a direct upload (`ZipFile` in
/// `CreateFunction` / `UpdateFunctionCode`), in bytes (50 MiB).
///
/// AWS quota "Deployment package (.zip file archive) size: 50 MB (zipped, when
/// uploading directly)",
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>.
/// This module does not enforce it (packages fetched from S3 may be larger);
/// the API layer does, before decoding the request.
pub const MAX_ZIPPED_UPLOAD_BYTES: usize = 52_428_800;

/// Largest number of entries (files, directories and symlinks) in a package.
///
/// AWS publishes no such quota; this bound keeps the memory used by a single
/// package's metadata small. Exceeding it yields [`PackageError::Corrupt`].
pub const MAX_ENTRIES: usize = 100_000;

/// Longest symlink target stored in a package, in bytes (Linux `PATH_MAX - 1`).
/// A longer one yields [`PackageError::UnsafePath`].
pub const MAX_SYMLINK_TARGET_BYTES: u64 = 4095;

/// Longest entry path accepted, in bytes (Linux `PATH_MAX - 1`).
const MAX_PATH_BYTES: usize = 4095;
/// Longest single path component accepted, in bytes (Linux `NAME_MAX`).
const MAX_COMPONENT_BYTES: usize = 255;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// MS-DOS "directory" attribute, in the low byte of the external attributes.
const DOS_DIRECTORY: u32 = 0x10;

/// Permission bits given to a file entry that carries no unix mode.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Permission bits given to a directory that carries no unix mode, to
/// directories only implied by the entries' paths, and to the package root.
const DEFAULT_DIR_MODE: u32 = 0o755;

/// The AWS message for a package that cannot be read as a zip archive.
const COULD_NOT_UNZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

/// What a deployment package contains, as found by [`inspect_zip`] or
/// [`unpack_zip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageInfo {
    /// Sum of the uncompressed sizes of the files and symlinks, in bytes.
    ///
    /// From [`inspect_zip`] this is the size the archive declares; from
    /// [`unpack_zip`] it is the number of bytes really decompressed and written.
    pub total_unzipped_bytes: u64,
    /// Number of regular-file entries.
    pub file_count: usize,
    /// Number of directory entries listed in the archive (directories that are
    /// only implied by the entries' paths are not counted).
    pub dir_count: usize,
    /// Number of symlink entries.
    pub symlink_count: usize,
    /// Whether the package has a top-level `bootstrap` file (a regular file or a
    /// symlink), the entry point of an OS-only (`provided.*`) runtime.
    pub has_bootstrap: bool,
}

/// Why a deployment package was refused or could not be unpacked.
///
/// Every variant except [`PackageError::Io`] is the client's fault; AWS answers
/// all of them with `InvalidParameterValueException` (HTTP 400) and the text of
/// [`PackageError::aws_message`].
#[derive(Debug)]
pub enum PackageError {
    /// The package has zero bytes.
    Empty,
    /// The bytes are not a readable zip archive (no central directory,
    /// truncated or inconsistent data, bad CRC, encryption, unsupported
    /// compression method, conflicting or too many entries). The string says
    /// what was wrong, for logs.
    Corrupt(String),
    /// The unzipped content is larger than `limit` bytes. `unzipped` is the size
    /// in bytes found so far: the declared total, or a lower bound of the real
    /// size when the declared sizes lied.
    TooLarge {
        /// Unzipped size found, in bytes (a lower bound when extraction stopped early).
        unzipped: u64,
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// An entry's path or symlink target would land outside the package root.
    /// The string names the entry and the reason.
    UnsafePath(String),
    /// A filesystem error while writing the package out (including: the
    /// destination already exists, or its parent does not).
    Io(io::Error),
}

impl PackageError {
    /// The message AWS Lambda returns for this error, for the
    /// `InvalidParameterValueException` body.
    ///
    /// - [`Empty`](Self::Empty), [`Corrupt`](Self::Corrupt), [`Io`](Self::Io):
    ///   "Could not unzip uploaded file. Please check your file, then try to
    ///   upload again."
    /// - [`TooLarge`](Self::TooLarge): "Unzipped size must be smaller than
    ///   262144000 bytes" (with the limit in force).
    /// - [`UnsafePath`](Self::UnsafePath): the unzip message followed by the
    ///   offending entry and reason.
    pub fn aws_message(&self) -> String {
        match self {
            PackageError::Empty | PackageError::Corrupt(_) | PackageError::Io(_) => {
                COULD_NOT_UNZIP.to_string()
            }
            PackageError::TooLarge { limit, .. } => {
                format!("Unzipped size must be smaller than {limit} bytes")
            }
            PackageError::UnsafePath(detail) => format!("{COULD_NOT_UNZIP} Unsafe {detail}."),
        }
    }

    /// Whether the package itself is at fault (every variant but
    /// [`Io`](Self::Io), which is a problem of this host).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, PackageError::Io(_))
    }
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageError::Empty => f.write_str("deployment package is empty"),
            PackageError::Corrupt(why) => write!(f, "deployment package is not a valid zip: {why}"),
            PackageError::TooLarge { unzipped, limit } => write!(
                f,
                "deployment package unzips to at least {unzipped} bytes, more than the limit of {limit} bytes"
            ),
            PackageError::UnsafePath(detail) => {
                write!(f, "deployment package has an unsafe {detail}")
            }
            PackageError::Io(e) => write!(f, "could not unpack deployment package: {e}"),
        }
    }
}

impl std::error::Error for PackageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PackageError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for PackageError {
    fn from(e: io::Error) -> Self {
        PackageError::Io(e)
    }
}

/// Validates a deployment package without writing anything.
///
/// `bytes` is the whole `.zip` archive; `max_unzipped` is the largest total
/// unzipped size allowed, in bytes (normally [`MAX_UNZIPPED_BYTES`]). Only the
/// sizes the archive *declares* are summed here (file contents are not
/// decompressed, symlink targets are read); [`unpack_zip`] also counts the
/// bytes really decompressed.
///
/// # Errors
/// - [`PackageError::Empty`] if `bytes` is empty;
/// - [`PackageError::Corrupt`] if it is not a readable zip, has more than
///   [`MAX_ENTRIES`] entries, encrypted entries, a compression method other
///   than stored/deflate, or entries that conflict (a file used as a
///   directory, the same path twice);
/// - [`PackageError::UnsafePath`] for an absolute name, a `..` component, a
///   backslash, a NUL, a drive letter, an over-long path, a symlink target
///   that is absolute or escapes the root, or an entry below a symlink;
/// - [`PackageError::TooLarge`] if the declared total exceeds `max_unzipped`.
///
/// Limits follow <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>.
pub fn inspect_zip(bytes: &[u8], max_unzipped: u64) -> Result<PackageInfo, PackageError> {
    Plan::new(bytes, max_unzipped).map(|plan| plan.info)
}

/// Validates a deployment package like [`inspect_zip`], then extracts it into
/// `dest`, which must not exist yet (its parent must).
///
/// The archive is extracted into a sibling directory `dest.tmp-<random>` which
/// is renamed to `dest` only once everything succeeded, so a failed unpack
/// leaves neither `dest` nor the temporary directory behind. Decompressed bytes
/// are counted as they are written and extraction stops as soon as the total
/// passes `max_unzipped` bytes, whatever sizes the archive declares. Unix
/// permission bits are kept (files without a unix mode get `0644`, directories
/// `0755`), modification times are kept, symlinks pointing inside the package
/// are created, and no entry is ever written through a symlink.
///
/// Returns the [`PackageInfo`] with `total_unzipped_bytes` set to the bytes
/// really written.
///
/// # Errors
/// Those of [`inspect_zip`], plus [`PackageError::TooLarge`] when the real
/// decompressed size passes the limit, [`PackageError::Corrupt`] when the data
/// does not decompress as declared (size or CRC), and [`PackageError::Io`] when
/// `dest` exists already or the filesystem fails.
///
/// Limits follow <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>.
pub fn unpack_zip(
    bytes: &[u8],
    dest: &Path,
    max_unzipped: u64,
) -> Result<PackageInfo, PackageError> {
    let Some(dest_name) = dest.file_name() else {
        return Err(PackageError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("destination {} has no file name", dest.display()),
        )));
    };
    if dest.symlink_metadata().is_ok() {
        return Err(PackageError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("destination {} already exists", dest.display()),
        )));
    }
    let mut plan = Plan::new(bytes, max_unzipped)?;
    let staging = create_staging_dir(dest, dest_name)?;
    let result = plan
        .extract(bytes, &staging, max_unzipped)
        .and_then(|written| {
            rename_no_replace(&staging, dest)?;
            Ok(written)
        });
    match result {
        Ok(written) => Ok(PackageInfo {
            total_unzipped_bytes: written,
            ..plan.info
        }),
        Err(e) => {
            remove_tree(&staging);
            Err(e)
        }
    }
}

/// What an entry is once written out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    /// A symlink, with its (validated) target.
    Symlink(Vec<u8>),
}

#[derive(Debug)]
struct PlannedEntry {
    /// Index in the archive.
    index: usize,
    /// The name as stored, for messages.
    name: String,
    /// The normalized relative path, one string per component; never empty.
    components: Vec<String>,
    kind: Kind,
    /// Permission bits (`0o777` mask) to apply.
    mode: u32,
}

/// A validated archive, ready to extract.
struct Plan<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    entries: Vec<PlannedEntry>,
    info: PackageInfo,
}

impl<'a> Plan<'a> {
    fn new(bytes: &'a [u8], max_unzipped: u64) -> Result<Self, PackageError> {
        if bytes.is_empty() {
            return Err(PackageError::Empty);
        }
        let mut archive = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| PackageError::Corrupt(e.to_string()))?;
        if archive.len() > MAX_ENTRIES {
            return Err(PackageError::Corrupt(format!(
                "archive has {} entries, more than {MAX_ENTRIES}",
                archive.len()
            )));
        }

        let mut entries = Vec::with_capacity(archive.len());
        let mut info = PackageInfo {
            total_unzipped_bytes: 0,
            file_count: 0,
            dir_count: 0,
            symlink_count: 0,
            has_bootstrap: false,
        };
        for index in 0..archive.len() {
            let entry = archive
                .by_index_data(index)
                .map_err(|e| PackageError::Corrupt(e.to_string()))?;
            let name = entry
                .name()
                .map_err(|e| PackageError::Corrupt(e.to_string()))?
                .into_owned();
            if entry.encrypted() {
                return Err(PackageError::Corrupt(format!(
                    "entry {name:?} is encrypted"
                )));
            }
            let method = entry.compression();
            if !matches!(
                method,
                CompressionMethod::Stored | CompressionMethod::Deflated
            ) {
                return Err(PackageError::Corrupt(format!(
                    "entry {name:?} uses unsupported compression method {method}"
                )));
            }
            let components = safe_components(&name)
                .map_err(|why| PackageError::UnsafePath(format!("entry {name:?}: {why}")))?;
            let attributes = entry.external_attributes();
            let unix_mode = attributes >> 16;
            let declared = entry.size();
            let kind = if name.ends_with('/')
                || (unix_mode != 0 && unix_mode & S_IFMT == S_IFDIR)
                || (unix_mode == 0 && attributes & DOS_DIRECTORY != 0)
            {
                Kind::Dir
            } else if unix_mode & S_IFMT == S_IFLNK {
                // The target is read (and validated) below.
                Kind::Symlink(Vec::new())
            } else {
                Kind::File
            };
            let mode = match (unix_mode, &kind) {
                (0, Kind::Dir) => DEFAULT_DIR_MODE,
                (0, _) => DEFAULT_FILE_MODE,
                (m, _) => m & 0o777,
            };
            drop(entry);

            let kind = match kind {
                Kind::Dir => {
                    info.dir_count += 1;
                    if components.is_empty() {
                        // "./" or similar: the root itself, nothing to do.
                        continue;
                    }
                    Kind::Dir
                }
                Kind::File => {
                    info.file_count += 1;
                    Kind::File
                }
                Kind::Symlink(_) => {
                    info.symlink_count += 1;
                    if declared > MAX_SYMLINK_TARGET_BYTES {
                        return Err(PackageError::UnsafePath(format!(
                            "symlink {name:?}: target longer than {MAX_SYMLINK_TARGET_BYTES} bytes"
                        )));
                    }
                    let target = read_symlink_target(&mut archive, index, &name)?;
                    check_symlink_target(&components, &target).map_err(|why| {
                        PackageError::UnsafePath(format!(
                            "symlink {name:?} -> {:?}: {why}",
                            String::from_utf8_lossy(&target)
                        ))
                    })?;
                    Kind::Symlink(target)
                }
            };
            if components.is_empty() {
                return Err(PackageError::UnsafePath(format!(
                    "entry {name:?}: empty path"
                )));
            }
            if !matches!(kind, Kind::Dir) {
                info.total_unzipped_bytes = info.total_unzipped_bytes.saturating_add(declared);
                if components.len() == 1 && components[0] == "bootstrap" {
                    info.has_bootstrap = true;
                }
            }
            entries.push(PlannedEntry {
                index,
                name,
                components,
                kind,
                mode,
            });
        }

        check_conflicts(&entries)?;
        if info.total_unzipped_bytes > max_unzipped {
            return Err(PackageError::TooLarge {
                unzipped: info.total_unzipped_bytes,
                limit: max_unzipped,
            });
        }
        Ok(Plan {
            archive,
            entries,
            info,
        })
    }

    /// Writes every entry below `root` (an empty, private directory); returns
    /// the number of bytes really written.
    fn extract(
        &mut self,
        bytes: &[u8],
        root: &Path,
        max_unzipped: u64,
    ) -> Result<u64, PackageError> {
        let mut total: u64 = 0;
        // Directories created, relative path -> permission bits to apply at the end.
        let mut dirs: HashMap<Vec<String>, u32> = HashMap::new();
        let mut buf = vec![0u8; 64 * 1024];

        for entry in &self.entries {
            let parent = &entry.components[..entry.components.len() - 1];
            ensure_dirs(root, parent, &entry.name, &mut dirs)?;
            let path = join(root, &entry.components);
            match &entry.kind {
                Kind::Dir => {
                    ensure_dirs(root, &entry.components, &entry.name, &mut dirs)?;
                    // An explicit entry's mode wins over the implied default.
                    dirs.insert(entry.components.clone(), entry.mode);
                }
                Kind::Symlink(target) => {
                    total = total.saturating_add(target.len() as u64);
                    if total > max_unzipped {
                        return Err(PackageError::TooLarge {
                            unzipped: total,
                            limit: max_unzipped,
                        });
                    }
                    std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
                        .map_err(|e| conflict_or_io(e, &entry.name))?;
                }
                Kind::File => {
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                        .open(&path)
                        .map_err(|e| conflict_or_io(e, &entry.name))?;
                    let mut zf = self.archive.by_index(entry.index).map_err(|e| {
                        PackageError::Corrupt(format!("entry {:?}: {e}", entry.name))
                    })?;
                    total = copy_counted(
                        &mut zf,
                        &mut file,
                        &mut buf,
                        total,
                        max_unzipped,
                        bytes,
                        &entry.name,
                    )?;
                    if let Some(mtime) = modified_time(&zf) {
                        file.set_modified(mtime)?;
                    }
                    drop(zf);
                    file.set_permissions(Permissions::from_mode(entry.mode))?;
                }
            }
        }

        // Deepest first, so that a directory made unwritable or unsearchable
        // does not stop its children from being changed.
        let mut dirs: Vec<(Vec<String>, u32)> = dirs.into_iter().collect();
        dirs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        for (components, mode) in dirs {
            fs::set_permissions(join(root, &components), Permissions::from_mode(mode))?;
        }
        fs::set_permissions(root, Permissions::from_mode(DEFAULT_DIR_MODE))?;
        Ok(total)
    }
}

/// Splits an entry name into safe, normalized components (empty and `.`
/// components dropped), or says why it is unsafe.
fn safe_components(name: &str) -> Result<Vec<String>, &'static str> {
    if name.contains('\0') {
        return Err("path contains a NUL byte");
    }
    if name.contains('\\') {
        return Err("path contains a backslash");
    }
    if name.starts_with('/') {
        return Err("path is absolute");
    }
    if name.len() > MAX_PATH_BYTES {
        return Err("path is too long");
    }
    let mut components = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path contains a '..' component"),
            _ => {
                if components.is_empty() && is_drive_letter(part) {
                    return Err("path starts with a drive letter");
                }
                if part.len() > MAX_COMPONENT_BYTES {
                    return Err("path component is too long");
                }
                components.push(part.to_string());
            }
        }
    }
    Ok(components)
}

/// `C:`, `c:foo`: a Windows drive-relative or absolute path.
fn is_drive_letter(part: &str) -> bool {
    let b = part.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Checks that a symlink at `link` (normalized components) pointing to
/// `target` stays inside the package root.
///
/// `..` is only allowed at the start of the target: once a target has gone
/// down through a component that may itself be a symlink, going back up with
/// `..` would resolve against that symlink's target, not lexically.
/// Because no entry is ever written below a symlink, the link's own parent
/// directories are real directories, so leading `..` resolve lexically.
fn check_symlink_target(link: &[String], target: &[u8]) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("empty target");
    }
    if target.contains(&0) {
        return Err("target contains a NUL byte");
    }
    if target.contains(&b'\\') {
        return Err("target contains a backslash");
    }
    if target.starts_with(b"/") {
        return Err("target is absolute");
    }
    // Depth of the directory holding the link, below the root.
    let mut depth = link.len().saturating_sub(1);
    let mut descended = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if descended {
                    return Err("target has '..' after a normal component");
                }
                if depth == 0 {
                    return Err("target escapes the package root");
                }
                depth -= 1;
            }
            _ => {
                if part.len() > MAX_COMPONENT_BYTES {
                    return Err("target component is too long");
                }
                descended = true;
            }
        }
    }
    Ok(())
}

/// Refuses two entries with the same path (unless both are directories) and
/// entries below a file or a symlink.
fn check_conflicts(entries: &[PlannedEntry]) -> Result<(), PackageError> {
    let mut kinds: HashMap<&[String], (&Kind, &str)> = HashMap::with_capacity(entries.len());
    for entry in entries {
        if let Some((other, other_name)) =
            kinds.insert(&entry.components, (&entry.kind, &entry.name))
            && !(*other == Kind::Dir && entry.kind == Kind::Dir)
        {
            return Err(PackageError::Corrupt(format!(
                "entries {other_name:?} and {:?} have the same path",
                entry.name
            )));
        }
    }
    for entry in entries {
        for len in 1..entry.components.len() {
            match kinds.get(&entry.components[..len]) {
                Some((Kind::Symlink(_), link)) => {
                    return Err(PackageError::UnsafePath(format!(
                        "entry {:?}: path goes through symlink {link:?}",
                        entry.name
                    )));
                }
                Some((Kind::File, file)) => {
                    return Err(PackageError::Corrupt(format!(
                        "entry {:?}: path goes through file {file:?}",
                        entry.name
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Reads the target stored as a symlink entry's content.
fn read_symlink_target(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    index: usize,
    name: &str,
) -> Result<Vec<u8>, PackageError> {
    let corrupt = |e: &dyn fmt::Display| PackageError::Corrupt(format!("symlink {name:?}: {e}"));
    let zf = archive.by_index(index).map_err(|e| corrupt(&e))?;
    let mut target = Vec::new();
    zf.take(MAX_SYMLINK_TARGET_BYTES + 1)
        .read_to_end(&mut target)
        .map_err(|e| corrupt(&e))?;
    if target.len() as u64 > MAX_SYMLINK_TARGET_BYTES {
        return Err(PackageError::UnsafePath(format!(
            "symlink {name:?}: target longer than {MAX_SYMLINK_TARGET_BYTES} bytes"
        )));
    }
    Ok(target)
}

/// Copies one file entry's content, adding its size to `total`; returns the
/// new total. Stops with `TooLarge` as soon as the total passes `limit`.
fn copy_counted(
    zf: &mut ZipFile<'_, Cursor<&[u8]>>,
    out: &mut File,
    buf: &mut [u8],
    mut total: u64,
    limit: u64,
    bytes: &[u8],
    name: &str,
) -> Result<u64, PackageError> {
    let total_before = total;
    loop {
        let n = match zf.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The data does not decompress as declared: either it is
                // damaged, or it is larger than its declared size (a zip bomb
                // lying about its size, which the zip reader refuses to
                // inflate further). Measure it to tell which.
                let real = measure_entry(bytes, zf.header_start(), zf.compressed_size(), limit);
                let unzipped = total_before.saturating_add(real);
                if unzipped > limit {
                    return Err(PackageError::TooLarge { unzipped, limit });
                }
                return Err(PackageError::Corrupt(format!("entry {name:?}: {e}")));
            }
        };
        total = total.saturating_add(n as u64);
        if total > limit {
            return Err(PackageError::TooLarge {
                unzipped: total,
                limit,
            });
        }
        out.write_all(&buf[..n])?;
    }
}

/// Decompresses the entry whose local header is at `header_start`, ignoring
/// its declared size and CRC, and returns how many bytes it yields, stopping
/// once past `budget`. Nothing is written.
fn measure_entry(bytes: &[u8], header_start: u64, compressed_size: u64, budget: u64) -> u64 {
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(header_start);
    let options = ZipReadOptions::new()
        .override_compressed_size(compressed_size)
        .override_uncompressed_size(u64::MAX)
        .ignore_crc32(true);
    let Ok(Some(mut zf)) = zip::read::read_zipfile_from_stream_with_options(&mut cursor, options)
    else {
        return 0;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut count: u64 = 0;
    while count <= budget {
        match zf.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => count = count.saturating_add(n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    count
}

/// The entry's modification time: the Info-ZIP extended timestamp if present,
/// else the MS-DOS date and time taken as UTC.
fn modified_time(zf: &ZipFile<'_, Cursor<&[u8]>>) -> Option<SystemTime> {
    for field in zf.extra_data_fields() {
        if let ExtraField::ExtendedTimestamp(ts) = field
            && let Some(secs) = ts.mod_time()
        {
            return Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(secs)));
        }
    }
    let dt = zf.last_modified()?;
    let (year, month, day) = (
        i64::from(dt.year()),
        i64::from(dt.month()),
        i64::from(dt.day()),
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let secs = stratus_core::time::days_from_civil(year, month, day) * 86_400
        + i64::from(dt.hour()) * 3600
        + i64::from(dt.minute()) * 60
        + i64::from(dt.second());
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

fn join(root: &Path, components: &[String]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(components);
    path
}

/// Makes sure every prefix of `components` below `root` is a real directory
/// (never a symlink), creating the missing ones.
fn ensure_dirs(
    root: &Path,
    components: &[String],
    name: &str,
    dirs: &mut HashMap<Vec<String>, u32>,
) -> Result<(), PackageError> {
    for len in 1..=components.len() {
        let prefix = &components[..len];
        if dirs.contains_key(prefix) {
            continue;
        }
        let path = join(root, prefix);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(PackageError::UnsafePath(format!(
                    "entry {name:?}: path goes through symlink {:?}",
                    prefix.join("/")
                )));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(PackageError::Corrupt(format!(
                    "entry {name:?}: path goes through file {:?}",
                    prefix.join("/")
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o700)
                    .create(&path)
                    .map_err(|e| conflict_or_io(e, name))?;
            }
            Err(e) => return Err(PackageError::Io(e)),
        }
        dirs.insert(prefix.to_vec(), DEFAULT_DIR_MODE);
    }
    Ok(())
}

/// An "already exists" while creating an entry means two entries collide.
fn conflict_or_io(e: io::Error, name: &str) -> PackageError {
    if e.kind() == io::ErrorKind::AlreadyExists {
        PackageError::Corrupt(format!("entry {name:?} collides with another entry"))
    } else {
        PackageError::Io(e)
    }
}

/// Creates the private staging directory `dest.tmp-<random>` beside `dest`.
fn create_staging_dir(dest: &Path, dest_name: &OsStr) -> Result<PathBuf, PackageError> {
    use std::hash::{BuildHasher, Hasher};
    let mut last_err = None;
    for attempt in 0u32..16 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u32(attempt);
        if let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        let mut name = dest_name.to_os_string();
        name.push(format!(".tmp-{:016x}", hasher.finish()));
        let path = dest.with_file_name(name);
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(PackageError::Io(e)),
        }
    }
    Err(PackageError::Io(last_err.unwrap_or_else(|| {
        io::Error::other("could not create a staging directory")
    })))
}

/// Renames `from` to `to`, failing if `to` exists (even as an empty directory,
/// which a plain `rename(2)` would replace).
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        let from_c = CString::new(from.as_os_str().as_bytes())?;
        let to_c = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Kernel or filesystem without RENAME_NOREPLACE: fall back below.
            Some(libc::ENOSYS) | Some(libc::EINVAL) => {}
            _ => return Err(err),
        }
    }
    if to.symlink_metadata().is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("destination {} already exists", to.display()),
        ));
    }
    fs::rename(from, to)
}

/// Best-effort removal of a staging tree, even one whose directories were
/// already made read-only.
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    make_dirs_writable(path);
    let _ = fs::remove_dir_all(path);
}

fn make_dirs_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, Permissions::from_mode(0o700));
    if let Ok(read_dir) = fs::read_dir(path) {
        for child in read_dir.flatten() {
            make_dirs_writable(&child.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use zip::ZipWriter;
    use zip::write::SimpleFileOptions;

    fn build(f: impl FnOnce(&mut ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        f(&mut w);
        w.finish().unwrap().into_inner()
    }

    fn file(w: &mut ZipWriter<Cursor<Vec<u8>>>, name: &str, mode: u32, data: &[u8]) {
        w.start_file(name, SimpleFileOptions::default().unix_permissions(mode))
            .unwrap();
        w.write_all(data).unwrap();
    }

    #[test]
    fn empty_and_garbage() {
        assert!(matches!(
            inspect_zip(b"", MAX_UNZIPPED_BYTES),
            Err(PackageError::Empty)
        ));
        assert!(matches!(
            inspect_zip(b"not a zip at all", MAX_UNZIPPED_BYTES),
            Err(PackageError::Corrupt(_))
        ));
    }

    #[test]
    fn aws_messages() {
        assert_eq!(
            PackageError::Empty.aws_message(),
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        );
        assert_eq!(
            PackageError::TooLarge {
                unzipped: 1 << 30,
                limit: MAX_UNZIPPED_BYTES
            }
            .aws_message(),
            "Unzipped size must be smaller than 262144000 bytes"
        );
        let e = PackageError::UnsafePath("entry \"../x\": path contains a '..' component".into());
        assert!(e.aws_message().contains("../x"));
        assert!(e.is_client_error());
        assert!(!PackageError::Io(io::Error::other("x")).is_client_error());
    }

    #[test]
    fn names() {
        assert_eq!(safe_components("a/./b//c/").unwrap(), ["a", "b", "c"]);
        for bad in [
            "../a",
            "a/../../b",
            "a/..",
            "/etc/passwd",
            "a\\b",
            "C:/x",
            "c:",
            "a\0b",
        ] {
            assert!(safe_components(bad).is_err(), "{bad:?}");
        }
        assert!(safe_components("dir/C:").is_ok());
        assert_eq!(safe_components("ünï/cødé").unwrap(), ["ünï", "cødé"]);
    }

    #[test]
    fn symlink_targets() {
        let link = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
        assert!(check_symlink_target(&link("lib64"), b"lib").is_ok());
        assert!(check_symlink_target(&link("node_modules/.bin/x"), b"../x/cli.js").is_ok());
        assert!(check_symlink_target(&link("a/b/c"), b"../../d").is_ok());
        assert!(check_symlink_target(&link("a"), b".").is_ok());
        assert!(check_symlink_target(&link("a"), b"..").is_err());
        assert!(check_symlink_target(&link("a/b"), b"../..").is_err());
        assert!(check_symlink_target(&link("a"), b"/etc").is_err());
        assert!(check_symlink_target(&link("a"), b"y/..").is_err());
        assert!(check_symlink_target(&link("a"), b"").is_err());
    }

    #[test]
    fn unpack_keeps_modes_and_bootstrap() {
        let zip = build(|w| {
            file(w, "bootstrap", 0o755, b"#!/bin/sh\necho hi\n");
            file(w, "lib/data.txt", 0o600, b"data");
            w.add_directory(
                "empty",
                SimpleFileOptions::default().unix_permissions(0o750),
            )
            .unwrap();
            w.add_symlink("lib64", "lib", SimpleFileOptions::default())
                .unwrap();
        });
        let info = inspect_zip(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert!(info.has_bootstrap);
        assert_eq!(
            (info.file_count, info.dir_count, info.symlink_count),
            (2, 1, 1)
        );
        assert_eq!(info.total_unzipped_bytes, 18 + 4 + 3);

        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("code");
        let info2 = unpack_zip(&zip, &dest, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info2, info);
        let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o777;
        assert_eq!(mode("bootstrap"), 0o755);
        assert_eq!(mode("lib/data.txt"), 0o600);
        assert_eq!(mode("lib"), 0o755);
        assert_eq!(mode("empty"), 0o750);
        assert_eq!(mode(""), 0o755);
        assert_eq!(fs::read_link(dest.join("lib64")).unwrap(), Path::new("lib"));
        assert_eq!(fs::read(dest.join("lib64/data.txt")).unwrap(), b"data");
        // Only `code` is left beside it.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        // The destination must not exist.
        assert!(matches!(
            unpack_zip(&zip, &dest, MAX_UNZIPPED_BYTES),
            Err(PackageError::Io(_))
        ));
    }

    #[test]
    fn no_unix_mode_defaults() {
        let zip = build(|w| {
            let opts = SimpleFileOptions::default().external_attributes(0);
            w.start_file("plain.txt", opts).unwrap();
            w.write_all(b"x").unwrap();
        });
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("code");
        unpack_zip(&zip, &dest, MAX_UNZIPPED_BYTES).unwrap();
        let meta = fs::metadata(dest.join("plain.txt")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o644);
    }

    #[test]
    fn write_through_symlink_refused() {
        let zip = build(|w| {
            w.add_symlink("a", "sub", SimpleFileOptions::default())
                .unwrap();
            file(w, "a/passwd", 0o644, b"x");
        });
        assert!(matches!(
            inspect_zip(&zip, MAX_UNZIPPED_BYTES),
            Err(PackageError::UnsafePath(_))
        ));
    }

    #[test]
    fn declared_size_over_limit() {
        let zip = build(|w| file(w, "big", 0o644, &[0u8; 1000]));
        match inspect_zip(&zip, 999) {
            Err(PackageError::TooLarge { unzipped, limit }) => {
                assert_eq!((unzipped, limit), (1000, 999));
            }
            other => panic!("{other:?}"),
        }
        assert!(inspect_zip(&zip, 1000).is_ok());
    }

    #[test]
    fn dos_date_to_unix() {
        assert_eq!(stratus_core::time::days_from_civil(1970, 1, 1), 0);
        assert_eq!(stratus_core::time::days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(stratus_core::time::days_from_civil(1980, 1, 1), 3_652);
    }
}
