//! Files for tests, demos and benchmarks: generated data, comparisons,
//! directory listings.

use std::io::Write;
use std::path::Path;

/// Writes `size` bytes of deterministic pseudo-random data (xorshift of `seed`).
pub fn write_random_file(path: &Path, size: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create data file"));
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write data file");
        left -= n as u64;
    }
    f.flush().expect("flush data file");
}

/// Whether two files have the same bytes.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Asserts that two files hold the same bytes, saying which differs.
pub fn assert_same_file(expected: &Path, actual: &Path) {
    let a = std::fs::read(expected).expect("read expected");
    let b = std::fs::read(actual).unwrap_or_else(|e| panic!("read {}: {e}", actual.display()));
    assert_eq!(
        a.len(),
        b.len(),
        "{} has the wrong length",
        actual.display()
    );
    assert!(
        a == b,
        "{} differs from {}",
        actual.display(),
        expected.display()
    );
}

/// Names of the entries of `dir`, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Writes files of the given sizes below `root` (paths with `/`), each
/// with its own pseudo-random content; directories are created as needed.
pub fn write_tree(root: &Path, files: &[(&str, u64)]) {
    for (i, (path, len)) in files.iter().enumerate() {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("a file below root")).expect("mkdir");
        write_random_file(&path, *len, 0x9e37_79b9 ^ i as u64);
    }
}

/// Every regular file below `dir`, as (path below `dir`, bytes), sorted.
pub fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn visit(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                visit(&entry.path(), &format!("{name}/"), out);
            } else if kind.is_file() {
                out.push((name, std::fs::read(entry.path()).expect("read file")));
            }
        }
    }
    let mut out = Vec::new();
    visit(dir, "", &mut out);
    out.sort();
    out
}

/// Asserts that two trees hold the same regular files with the same bytes.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let (a, b) = (read_tree(expected), read_tree(actual));
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&a),
        names(&b),
        "{} and {} list different files",
        expected.display(),
        actual.display()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs between {} and {}",
            expected.display(),
            actual.display()
        );
    }
}
