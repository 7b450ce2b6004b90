//! A file that several processes may try to create at once, and only one may: the first complete
//! one wins and nobody ever sees a partial file.
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` with `contents` (mode 0600) unless it exists: the bytes are written and synced
/// in a temporary file beside it, which is then hard-linked into place (a link never replaces an
/// existing name), so a concurrent creator either wins or finds a complete file. Returns whether
/// this call created it.
pub fn create_file_once(path: &Path, contents: &[u8]) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut name = [0u8; 8];
    rand::fill(&mut name);
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.{}", hex::encode(name)));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            std::fs::File::open(dir)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_first_creator_wins_and_no_temporary_file_stays() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/key");
        assert!(create_file_once(&p, b"first").unwrap());
        assert!(!create_file_once(&p, b"second").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn racing_creators_agree_on_one_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key");
        let won: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u8)
                .map(|i| {
                    let p = p.clone();
                    s.spawn(move || create_file_once(&p, &[i; 64]).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1);
        let winner = won.iter().position(|w| *w).unwrap() as u8;
        assert_eq!(std::fs::read(&p).unwrap(), vec![winner; 64]);
    }
}
