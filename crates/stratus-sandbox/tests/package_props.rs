//! Property tests for `stratus_sandbox::package`: unpacking untrusted Lambda
//! deployment packages never panics, never writes outside the destination,
//! round-trips honest packages exactly, and refuses zip bombs and symlink
//! escapes without leaving anything behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use stratus_sandbox::package::{
    MAX_UNZIPPED_BYTES, PackageError, PackageInfo, inspect_zip, unpack_zip,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

type Writer = ZipWriter<Cursor<Vec<u8>>>;

fn build(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    f(&mut w);
    w.finish().unwrap().into_inner()
}

fn add_file(w: &mut Writer, name: &str, mode: u32, method: CompressionMethod, data: &[u8]) {
    let opts = SimpleFileOptions::default()
        .compression_method(method)
        .unix_permissions(mode);
    w.start_file(name, opts).unwrap();
    w.write_all(data).unwrap();
}

/// A sandbox `root/outer/inner/dest`: anything escaping `dest` shows up as an
/// extra name in `inner`, `outer` or `root`.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("outer/inner")).unwrap();
        Sandbox { root }
    }
    fn inner(&self) -> PathBuf {
        self.root.path().join("outer/inner")
    }
    fn dest(&self) -> PathBuf {
        self.inner().join("dest")
    }
    fn unpack(&self, zip: &[u8], limit: u64) -> Result<PackageInfo, PackageError> {
        unpack_zip(zip, &self.dest(), limit)
    }
    /// Nothing escaped: the levels above `dest` hold only the sandbox chain,
    /// and `inner` holds `dest` exactly when unpacking succeeded.
    fn assert_contained(&self, unpacked: bool) {
        assert_eq!(names(self.root.path()), ["outer"]);
        assert_eq!(names(&self.root.path().join("outer")), ["inner"]);
        let expected: &[&str] = if unpacked { &["dest"] } else { &[] };
        assert_eq!(names(&self.inner()), expected, "leftovers beside dest");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>, u32),
    Dir(u32),
    Link(PathBuf),
}

/// Everything below `dir`, without following symlinks.
fn walk(dir: &Path) -> BTreeMap<String, Node> {
    fn go(base: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Node::Dir(meta.mode() & 0o777));
                go(base, &path, out);
            } else {
                out.insert(
                    rel,
                    Node::File(fs::read(&path).unwrap(), meta.mode() & 0o777),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// Rewrites the declared uncompressed size of the `nth` entry, in its local
/// header and in the central directory (entry contents must not contain the
/// header signatures).
fn patch_declared_size(zip: &mut [u8], nth: usize, declared: u32) {
    let find = |zip: &[u8], sig: &[u8]| {
        zip.windows(4)
            .enumerate()
            .filter(|(_, w)| *w == sig)
            .nth(nth)
            .expect("header")
            .0
    };
    let local = find(zip, b"PK\x03\x04");
    zip[local + 22..local + 26].copy_from_slice(&declared.to_le_bytes());
    let central = find(zip, b"PK\x01\x02");
    zip[central + 24..central + 28].copy_from_slice(&declared.to_le_bytes());
}

/// One file of `actual` zero bytes whose headers declare `declared` bytes.
fn lying_zip(actual: usize, declared: u32, method: CompressionMethod) -> Vec<u8> {
    let mut zip = build(|w| add_file(w, "bomb", 0o644, method, &vec![0u8; actual]));
    patch_declared_size(&mut zip, 0, declared);
    zip
}

/// Lexically resolves a symlink `target` from the directory holding `link`;
/// `None` if it climbs above the root.
fn lexical_escape(link: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut stack: Vec<&str> = link
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    stack.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return true;
                }
            }
            other => stack.push(other),
        }
    }
    false
}

/// Independent oracle for entry names that must be refused.
fn name_is_unsafe(name: &str) -> bool {
    if name.contains('\0') || name.contains('\\') || name.starts_with('/') {
        return true;
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if name.split('/').any(|c| c == "..") {
        return true;
    }
    if let Some(first) = parts.first() {
        let b = first.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return true;
        }
    }
    false
}

fn normalized(name: &str) -> Vec<String> {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(String::from)
        .collect()
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-c]{1,2}",
        2 => "\\PC{1,4}",
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(String::new()),
        1 => Just("C:".to_string()),
        1 => Just("a\\..\\..\\b".to_string()),
        1 => Just("..\\x".to_string()),
        1 => Just("ü€😀".to_string()),
        1 => Just("x\0y".to_string()),
        1 => Just("bootstrap".to_string()),
    ]
}

fn entry_name() -> impl Strategy<Value = String> {
    (
        prop_oneof![4 => Just(""), 1 => Just("/"), 1 => Just("@ABS@/"), 1 => Just("./")],
        prop::collection::vec(component(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(prefix, parts, dir)| {
            let mut s = format!("{prefix}{}", parts.join("/"));
            if dir {
                s.push('/');
            }
            s
        })
}

/// Names that are all safe, though they may conflict with each other.
fn safe_entry_name() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("./")],
        prop::collection::vec(
            prop_oneof![
                6 => "[a-c]{1,2}",
                1 => Just("ü€😀".to_string()),
                1 => Just("bootstrap".to_string()),
                1 => Just(".".to_string()),
                1 => Just(String::new()),
                1 => Just("dir/C:".to_string()),
            ],
            1..4,
        ),
        any::<bool>(),
    )
        .prop_map(|(prefix, parts, dir)| {
            let mut s = format!("{prefix}{}", parts.join("/"));
            if dir {
                s.push('/');
            }
            s
        })
}

fn file_tree() -> impl Strategy<Value = BTreeMap<String, (Vec<u8>, bool, bool)>> {
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        (any::<u8>(), 0usize..20_000).prop_map(|(b, n)| vec![b; n]),
    ];
    prop::collection::btree_map(
        "(bootstrap|[a-d]{1,3}(/[a-d]{1,3}){0,2})",
        (content, any::<bool>(), any::<bool>()),
        1..12,
    )
    .prop_map(|mut tree| {
        // A path that is a directory of another one cannot also be a file.
        let keys: Vec<String> = tree.keys().cloned().collect();
        tree.retain(|k, _| !keys.iter().any(|o| o.starts_with(&format!("{k}/"))));
        tree
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = inspect_zip(&bytes, MAX_UNZIPPED_BYTES);
        let sb = Sandbox::new();
        let ok = sb.unpack(&bytes, MAX_UNZIPPED_BYTES).is_ok();
        sb.assert_contained(ok);
    }

    #[test]
    fn mutated_zips_never_panic_nor_escape(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut zip = build(|w| {
            add_file(w, "bootstrap", 0o755, CompressionMethod::Deflated, b"#!/bin/sh\nexit 0\n");
            add_file(w, "lib/a.txt", 0o644, CompressionMethod::Stored, b"hello world");
            w.add_symlink("lib64", "lib", SimpleFileOptions::default()).unwrap();
            add_file(w, "z", 0o644, CompressionMethod::Deflated, &[7u8; 5000]);
        });
        for (at, value) in mutations {
            let i = at.index(zip.len());
            zip[i] = value;
        }
        if let Some(at) = truncate {
            zip.truncate(at.index(zip.len()));
        }
        let _ = inspect_zip(&zip, MAX_UNZIPPED_BYTES);
        let sb = Sandbox::new();
        let ok = sb.unpack(&zip, MAX_UNZIPPED_BYTES).is_ok();
        sb.assert_contained(ok);
    }

    #[test]
    fn arbitrary_names_refused_or_inside(
        names in prop_oneof![
            prop::collection::vec(entry_name(), 1..6),
            prop::collection::vec(safe_entry_name(), 1..6),
        ],
    ) {
        let sb = Sandbox::new();
        let abs = sb.root.path().to_string_lossy().into_owned();
        let mut seen = BTreeSet::new();
        let names: Vec<String> = names
            .into_iter()
            .map(|n| n.replace("@ABS@", &abs))
            .filter(|n| seen.insert(n.clone()))
            .collect();
        let zip = build(|w| {
            for n in &names {
                if n.ends_with('/') {
                    w.add_directory(n.as_str(), SimpleFileOptions::default()).unwrap();
                } else {
                    add_file(w, n, 0o644, CompressionMethod::Stored, n.as_bytes());
                }
            }
        });
        let any_unsafe = names.iter().any(|n| name_is_unsafe(n));
        // Conflicts: the same normalized path twice (unless both directories),
        // or a file used as a directory.
        let paths: Vec<(Vec<String>, bool)> =
            names.iter().map(|n| (normalized(n), n.ends_with('/'))).collect();
        let conflict = paths.iter().enumerate().any(|(i, (p, dir))| {
            (!dir && p.is_empty())
                || paths.iter().enumerate().any(|(j, (q, qdir))| {
                    i != j
                        && ((p == q && !(*dir && *qdir))
                            || (!dir && q.len() > p.len() && q[..p.len()] == p[..]))
                })
        });

        let inspected = inspect_zip(&zip, MAX_UNZIPPED_BYTES);
        let result = sb.unpack(&zip, MAX_UNZIPPED_BYTES);
        prop_assert_eq!(inspected.is_ok(), result.is_ok());
        sb.assert_contained(result.is_ok());
        if any_unsafe {
            prop_assert!(
                matches!(result, Err(PackageError::UnsafePath(_))),
                "unsafe names {:?} gave {:?}", names, result
            );
        } else if conflict {
            prop_assert!(result.is_err(), "conflicting names {:?} accepted", names);
        } else {
            prop_assert!(result.is_ok(), "safe names {:?} refused: {:?}", names, result);
            let tree = walk(&sb.dest());
            for (n, (p, dir)) in names.iter().zip(&paths) {
                if p.is_empty() {
                    continue;
                }
                let node = tree.get(&p.join("/"));
                if *dir {
                    prop_assert!(matches!(node, Some(Node::Dir(0o755))), "{:?}: {:?}", n, node);
                } else {
                    prop_assert_eq!(node, Some(&Node::File(n.as_bytes().to_vec(), 0o644)));
                }
            }
        }
    }

    #[test]
    fn random_trees_round_trip(tree in file_tree()) {
        let zip = build(|w| {
            for (path, (data, exec, deflate)) in &tree {
                let method = if *deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
                add_file(w, path, if *exec { 0o755 } else { 0o644 }, method, data);
            }
        });
        let total: u64 = tree.values().map(|(d, _, _)| d.len() as u64).sum();
        let info = inspect_zip(&zip, MAX_UNZIPPED_BYTES).unwrap();
        prop_assert_eq!(info.total_unzipped_bytes, total);
        prop_assert_eq!(info.file_count, tree.len());
        prop_assert_eq!(info.has_bootstrap, tree.contains_key("bootstrap"));

        let sb = Sandbox::new();
        let unpacked = sb.unpack(&zip, MAX_UNZIPPED_BYTES).unwrap();
        prop_assert_eq!(unpacked, info);
        sb.assert_contained(true);
        let files: BTreeMap<String, Node> = walk(&sb.dest())
            .into_iter()
            .filter(|(_, n)| !matches!(n, Node::Dir(0o755)))
            .collect();
        let expected: BTreeMap<String, Node> = tree
            .iter()
            .map(|(p, (d, exec, _))| (p.clone(), Node::File(d.clone(), if *exec { 0o755 } else { 0o644 })))
            .collect();
        prop_assert_eq!(files, expected);

        // One byte under the declared total is refused, and leaves nothing.
        if total > 0 {
            let sb = Sandbox::new();
            let too_large = matches!(sb.unpack(&zip, total - 1), Err(PackageError::TooLarge { .. }));
            prop_assert!(too_large);
            sb.assert_contained(false);
        }
    }

    #[test]
    fn lying_sizes_are_caught(
        actual in 1usize..200_000,
        declared_frac in 0.0f64..1.0,
        limit_frac in 0.0f64..2.0,
        deflate in any::<bool>(),
    ) {
        let declared = (actual as f64 * declared_frac) as u32;
        let limit = declared as u64 + ((actual as f64) * limit_frac) as u64;
        let method = if deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        let zip = lying_zip(actual, declared, method);
        // The declared size fits, so inspection alone cannot see the lie.
        prop_assert!(inspect_zip(&zip, limit).is_ok());
        let sb = Sandbox::new();
        let result = sb.unpack(&zip, limit);
        sb.assert_contained(false);
        if actual as u64 > limit {
            prop_assert!(
                matches!(result, Err(PackageError::TooLarge { unzipped, .. }) if unzipped > limit),
                "actual {} limit {}: {:?}", actual, limit, result
            );
        } else {
            prop_assert!(matches!(result, Err(PackageError::Corrupt(_))), "{:?}", result);
        }
    }

    #[test]
    fn symlinks_refused_or_inside(
        links in prop::collection::vec(
            (
                "[ab](/[ab]){0,2}",
                prop::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("b"), Just("")], 1..5),
                any::<bool>(),
            ),
            1..3,
        ),
    ) {
        let links: Vec<(String, String)> = links
            .into_iter()
            .map(|(name, parts, abs)| (name, format!("{}{}", if abs { "/" } else { "" }, parts.join("/"))))
            .collect();
        let mut seen = BTreeSet::new();
        let links: Vec<(String, String)> = links.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect();
        let zip = build(|w| {
            for (name, target) in &links {
                w.add_symlink(name.as_str(), target.as_str(), SimpleFileOptions::default()).unwrap();
            }
        });
        let sb = Sandbox::new();
        let result = sb.unpack(&zip, MAX_UNZIPPED_BYTES);
        sb.assert_contained(result.is_ok());
        let escaping = links.iter().any(|(n, t)| lexical_escape(n, t) || t.is_empty());
        if escaping {
            prop_assert!(result.is_err(), "{:?} accepted", links);
        }
        if result.is_ok() {
            let dest = fs::canonicalize(sb.dest()).unwrap();
            for (name, target) in &links {
                let at = sb.dest().join(name);
                prop_assert_eq!(fs::read_link(&at).unwrap(), PathBuf::from(target));
                // Wherever it physically resolves, it stays inside.
                if let Ok(real) = fs::canonicalize(&at) {
                    prop_assert!(real.starts_with(&dest), "{:?} -> {:?} resolves to {:?}", name, target, real);
                }
            }
        }
    }
}

#[test]
fn lying_bomb_with_real_limit_shape() {
    // 8 MiB of zeros declared as 1 KiB, against a 1 MiB limit.
    let zip = lying_zip(8 << 20, 1024, CompressionMethod::Deflated);
    assert!(zip.len() < 64 * 1024, "the bomb is small: {}", zip.len());
    let sb = Sandbox::new();
    match sb.unpack(&zip, 1 << 20) {
        Err(e @ PackageError::TooLarge { .. }) => {
            assert_eq!(
                e.aws_message(),
                "Unzipped size must be smaller than 1048576 bytes"
            );
        }
        other => panic!("{other:?}"),
    }
    sb.assert_contained(false);
}

#[test]
fn lie_after_honest_entries_counts_them() {
    let mut zip = build(|w| {
        add_file(w, "honest", 0o644, CompressionMethod::Stored, &[1u8; 500]);
        add_file(w, "bomb", 0o644, CompressionMethod::Deflated, &[0u8; 600]);
    });
    patch_declared_size(&mut zip, 1, 10);
    // Declared 510 <= 1000, real 1100 > 1000.
    assert!(inspect_zip(&zip, 1000).is_ok());
    let sb = Sandbox::new();
    assert!(matches!(
        sb.unpack(&zip, 1000),
        Err(PackageError::TooLarge { unzipped, limit: 1000 }) if unzipped > 1000
    ));
    sb.assert_contained(false);
}

#[test]
fn symlink_escapes_refused() {
    let cases: &[&[(&str, &str)]] = &[
        &[("a", "/etc")],
        &[("a", "..")],
        &[("a", "../outside")],
        &[("d/a", "../..")],
        &[("d/a", "../../inner")],
        &[("a", "b/../..")],
        // `y -> .` makes `y/..` the parent of the root physically.
        &[("y", "."), ("x", "y/..")],
        &[("y", "."), ("x", "y/../escape")],
    ];
    for links in cases {
        let zip = build(|w| {
            for (name, target) in *links {
                w.add_symlink(*name, *target, SimpleFileOptions::default())
                    .unwrap();
            }
        });
        assert!(
            matches!(
                inspect_zip(&zip, MAX_UNZIPPED_BYTES),
                Err(PackageError::UnsafePath(_))
            ),
            "{links:?}"
        );
        let sb = Sandbox::new();
        let result = sb.unpack(&zip, MAX_UNZIPPED_BYTES);
        assert!(
            matches!(result, Err(PackageError::UnsafePath(_))),
            "{links:?}: {result:?}"
        );
        sb.assert_contained(false);
    }
}

#[test]
fn writing_through_symlink_refused() {
    let sb = Sandbox::new();
    // `a -> ../` would be refused on its own; `a -> sub` is fine, but nothing
    // may be written below it, so `a/passwd` never reaches `sub/passwd`.
    for links in [("a", "/etc"), ("a", "sub"), ("a", ".")] {
        let zip = build(|w| {
            w.add_directory("sub", SimpleFileOptions::default())
                .unwrap();
            w.add_symlink(links.0, links.1, SimpleFileOptions::default())
                .unwrap();
            add_file(
                w,
                "a/passwd",
                0o644,
                CompressionMethod::Stored,
                b"root::0:0::/:/bin/sh\n",
            );
        });
        let result = sb.unpack(&zip, MAX_UNZIPPED_BYTES);
        assert!(
            matches!(result, Err(PackageError::UnsafePath(_))),
            "{links:?}: {result:?}"
        );
        sb.assert_contained(false);
    }
}

#[test]
fn failed_unpack_leaves_nothing() {
    // The error comes late: after files were written to the staging directory.
    let mut zip = build(|w| {
        for i in 0..20 {
            add_file(
                w,
                &format!("dir{i}/f"),
                0o644,
                CompressionMethod::Stored,
                b"data",
            );
        }
        w.add_directory("ro", SimpleFileOptions::default().unix_permissions(0o500))
            .unwrap();
        add_file(w, "ro/x", 0o400, CompressionMethod::Stored, b"x");
        add_file(
            w,
            "zz-corrupt",
            0o644,
            CompressionMethod::Stored,
            b"0123456789",
        );
    });
    // Damage the last file's content (its CRC no longer matches).
    let at = zip.windows(10).rposition(|w| w == b"0123456789").unwrap();
    zip[at] = b'X';
    assert!(inspect_zip(&zip, MAX_UNZIPPED_BYTES).is_ok());
    let sb = Sandbox::new();
    let result = sb.unpack(&zip, MAX_UNZIPPED_BYTES);
    assert!(
        matches!(result, Err(PackageError::Corrupt(_))),
        "{result:?}"
    );
    sb.assert_contained(false);
}

#[test]
fn destination_must_not_exist() {
    let zip = build(|w| add_file(w, "f", 0o644, CompressionMethod::Stored, b"x"));
    let sb = Sandbox::new();
    fs::create_dir(sb.dest()).unwrap();
    assert!(matches!(
        sb.unpack(&zip, MAX_UNZIPPED_BYTES),
        Err(PackageError::Io(_))
    ));
    assert!(fs::read_dir(sb.dest()).unwrap().next().is_none());
    assert_eq!(names(&sb.inner()), ["dest"]);
}

#[test]
fn executable_bootstrap_and_dir_modes_kept() {
    let zip = build(|w| {
        add_file(
            w,
            "bootstrap",
            0o755,
            CompressionMethod::Deflated,
            b"#!/bin/sh\n",
        );
        w.add_directory("ro", SimpleFileOptions::default().unix_permissions(0o555))
            .unwrap();
        add_file(w, "ro/readme", 0o444, CompressionMethod::Stored, b"r");
    });
    let sb = Sandbox::new();
    let info = sb.unpack(&zip, MAX_UNZIPPED_BYTES).unwrap();
    assert!(info.has_bootstrap);
    let tree = walk(&sb.dest());
    assert_eq!(
        tree["bootstrap"],
        Node::File(b"#!/bin/sh\n".to_vec(), 0o755)
    );
    assert_eq!(tree["ro"], Node::Dir(0o555));
    assert_eq!(tree["ro/readme"], Node::File(b"r".to_vec(), 0o444));
    // Let the temp dir cleanup work as a non-root user too.
    fs::set_permissions(
        sb.dest().join("ro"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

#[test]
fn mtime_kept() {
    let when = zip::DateTime::from_date_and_time(2021, 6, 15, 12, 30, 0).unwrap();
    let zip = build(|w| {
        let opts = SimpleFileOptions::default().last_modified_time(when);
        w.start_file("handler.py", opts).unwrap();
        w.write_all(b"def handler(e, c): return 1\n").unwrap();
    });
    let sb = Sandbox::new();
    sb.unpack(&zip, MAX_UNZIPPED_BYTES).unwrap();
    let mtime = fs::metadata(sb.dest().join("handler.py")).unwrap().mtime();
    assert_eq!(mtime, 1_623_760_200); // 2021-06-15T12:30:00Z
}
