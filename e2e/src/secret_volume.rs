//! A directory updated the way the kubelet updates a Secret volume: each version of the files
//! in its own hidden directory, `..data` a symlink to the current one, every file a symlink
//! through `..data`, and an update that swaps `..data` atomically (a new symlink renamed over
//! it) and then removes the old version. A reader never sees a mix of two versions.

use std::path::{Path, PathBuf};

/// A Secret-volume-like directory.
pub struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    /// Creates `dir` holding `files` (name, content).
    pub fn new(dir: &Path, files: &[(&str, &[u8])]) -> SecretVolume {
        std::fs::create_dir_all(dir).expect("create the volume directory");
        let mut volume = SecretVolume {
            dir: dir.to_path_buf(),
            version: 0,
        };
        volume.update(files);
        volume
    }

    /// The path a container reads file `name` at.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The volume's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the files with `files`, as one atomic swap.
    pub fn update(&mut self, files: &[(&str, &[u8])]) {
        let old = self.version_dir(self.version);
        self.version += 1;
        let new = self.version_dir(self.version);
        std::fs::create_dir(&new).expect("create a version directory");
        for (name, content) in files {
            std::fs::write(new.join(name), content).expect("write a file of the version");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(new.file_name().expect("a name"), &tmp)
            .expect("symlink ..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        for (name, _) in files {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                    .expect("symlink a file through ..data");
            }
        }
        if self.version > 1 {
            std::fs::remove_dir_all(old).expect("remove the previous version");
        }
    }

    fn version_dir(&self, version: u32) -> PathBuf {
        self.dir.join(format!("..version_{version}"))
    }
}
