//! The zip archives of `mc admin cluster … export|import`, read with hard limits: an import is
//! an attacker's file until proven otherwise. The body is capped before it is read
//! ([`super::MAX_IMPORT_BODY`]); here the number of entries, each entry's inflated size and
//! the total inflated size are capped while inflating (never trusting the sizes the archive
//! claims), names are checked (no `..`, no absolute or backslashed paths, no duplicates), and
//! each entry's CRC-32 is checked by reading it to its end. Nothing is written anywhere: the
//! entries are only held in memory for the caller to validate.
use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;

/// The caps of one kind of archive.
pub(crate) struct Limits {
    pub entries: usize,
    pub entry_bytes: u64,
    pub total_bytes: u64,
}

/// One file of an archive (an IAM archive's hold secret keys: zeroized, never printed).
pub(crate) struct Entry {
    pub name: String,
    pub data: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.name, self.data.len())
    }
}

/// Reads every file of `zip` within `limits` (directory entries are passed over).
pub(crate) fn read(zip: &[u8], limits: &Limits) -> Result<Vec<Entry>, String> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| format!("not a zip archive: {e}"))?;
    if archive.len() > limits.entries {
        return Err(format!(
            "the archive has {} entries; at most {} are read",
            archive.len(),
            limits.entries
        ));
    }
    let mut out: Vec<Entry> = Vec::with_capacity(archive.len());
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut f = archive
            .by_index(i)
            .map_err(|e| format!("entry {i} of the archive: {e}"))?;
        if f.is_dir() {
            continue;
        }
        let name = f
            .name()
            .map_err(|e| format!("entry {i} of the archive has no readable name: {e}"))?
            .into_owned();
        check_name(&name)?;
        if out.iter().any(|e| e.name == name) {
            return Err(format!("{name} is in the archive twice"));
        }
        let mut data = zeroize::Zeroizing::new(Vec::new());
        let cap = limits.entry_bytes.min(limits.total_bytes - total);
        (&mut f)
            .take(cap + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("{name}: {e}"))?;
        if data.len() as u64 > cap {
            return Err(format!(
                "{name} inflates to more than {} bytes (at most {} per file, {} in all)",
                cap, limits.entry_bytes, limits.total_bytes
            ));
        }
        total += data.len() as u64;
        out.push(Entry { name, data });
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    match bad {
        true => Err(format!("the archive holds a bad file name: {name:?}")),
        false => Ok(()),
    }
}

/// A zip of `files` (name, content), DEFLATE-compressed and mode 0600 as MinIO writes them.
pub(crate) fn write<'a>(files: impl IntoIterator<Item = (String, &'a [u8])>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    for (name, data) in files {
        w.start_file(name, opts).expect("writes into memory");
        w.write_all(data).expect("writes into memory");
    }
    w.finish().expect("writes into memory").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        entries: 4,
        entry_bytes: 1000,
        total_bytes: 1500,
    };

    #[test]
    fn round_trip() {
        let zip = write([("b/versioning.xml".to_owned(), &b"<x/>"[..])]);
        let e = read(&zip, &SMALL).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].name.as_str(), &e[0].data[..]),
            ("b/versioning.xml", &b"<x/>"[..])
        );
    }

    #[test]
    fn hostile_archives_are_refused() {
        let zeros = vec![0u8; 1001];
        let bomb = write([("a/b".to_owned(), &zeros[..])]);
        assert!(bomb.len() < 200, "compresses well: {}", bomb.len());
        assert!(
            read(&bomb, &SMALL)
                .unwrap_err()
                .contains("inflates to more than")
        );
        let k = vec![0u8; 800];
        let two = write([("a/b".to_owned(), &k[..]), ("a/c".to_owned(), &k[..])]);
        assert!(read(&two, &SMALL).unwrap_err().contains("1500 in all"));
        let many = write((0..5).map(|i| (format!("a/{i}"), &b"x"[..])));
        assert!(read(&many, &SMALL).unwrap_err().contains("5 entries"));
        for name in ["../etc/passwd", "/abs", "a//b", "a/./b", "a\\b"] {
            let z = write([(name.to_owned(), &b"x"[..])]);
            assert!(
                read(&z, &SMALL).unwrap_err().contains("bad file name"),
                "{name}"
            );
        }
        assert!(
            read(b"PK\x03\x04 not a zip", &SMALL)
                .unwrap_err()
                .starts_with("not a zip")
        );
        // A flipped byte in the compressed data: the CRC (or inflate) fails, nothing is taken.
        let mut z = write([("a/b".to_owned(), &b"hello hello hello hello"[..])]);
        let extra = u16::from_le_bytes([z[28], z[29]]) as usize;
        let at = 30 + 3 + extra + 2;
        z[at] ^= 0x55;
        assert!(read(&z, &SMALL).is_err());
    }
}
