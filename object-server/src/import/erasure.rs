//! The stored bytes of a MinIO version, put back together from its shards on the drives of an
//! erasure set (a single drive is the set of one data shard and no parity).
//!
//! MinIO cuts each part into blocks of the version's erasure block size (1 MiB); each block is
//! split into `data` shards of `ceil(block / data)` bytes (the last zero-padded) and `parity`
//! shards are computed with a systematic Reed–Solomon code over GF(2⁸) (the Vandermonde
//! construction of klauspost/reedsolomon, which the `reed-solomon-erasure` crate shares). Drive
//! `i` keeps shard `EcIndex` (1-based, in its own xl.meta) of every block in its `part.N` (or
//! inline in its xl.meta), each shard block behind its bitrot hash ([`super::bitrot`]). Facts
//! from MinIO's public `cmd/erasure-coding.go`, `cmd/erasure-decode.go`.
//!
//! Reading: every available shard of a block is read and checked; a missing drive, a missing
//! or short file, or a shard block failing its hash is left out, and when a data shard is
//! missing the block is rebuilt from any `data` good shards. Fewer than that fails the version.
use std::io::Read;
use std::path::PathBuf;

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::bitrot::{self, HASH};
use super::xl_meta::{ObjectVersion, Version, XlMeta, XlMetaError};

/// One drive's copy of an object's xl.meta, and the object's directory on that drive.
pub struct Copy {
    /// The object's directory on the drive.
    pub dir: PathBuf,
    /// The drive's xl.meta.
    pub meta: XlMeta,
}

fn same_version(a: &Version, b: &Version) -> bool {
    match (a, b) {
        (Version::Object(x), Version::Object(y)) => {
            x.version_id == y.version_id && x.mod_time_ns == y.mod_time_ns
        }
        (Version::DeleteMarker(x), Version::DeleteMarker(y)) => {
            x.version_id == y.version_id && x.mod_time_ns == y.mod_time_ns
        }
        (Version::Legacy, Version::Legacy) => true,
        _ => false,
    }
}

/// The copy whose list of versions most drives share (a drive that missed a write, or holds a
/// stale xl.meta, is outvoted); ties go to the first drive.
pub fn reference(copies: &[Copy]) -> Option<&Copy> {
    let agree = |a: &Copy, b: &Copy| {
        a.meta.versions.len() == b.meta.versions.len()
            && a.meta
                .versions
                .iter()
                .zip(&b.meta.versions)
                .all(|(x, y)| same_version(x, y))
    };
    // `max_by_key` keeps the last maximum: the position breaks ties towards earlier drives.
    copies
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| {
            let votes = copies.iter().filter(|o| agree(c, o)).count();
            (votes, std::cmp::Reverse(*i))
        })
        .map(|(_, c)| c)
}

/// Where each shard of `v` is (indexed by shard number − 1): each drive's copy of the same
/// version names its shard index; its data is inline in that copy or in its data directory.
pub fn shard_sources(
    copies: &[Copy],
    v: &ObjectVersion,
) -> Result<Vec<Option<ShardSource>>, XlMetaError> {
    let total = v.erasure.data + v.erasure.parity;
    let mut out: Vec<Option<ShardSource>> = vec![None; total];
    let wanted = Version::Object(v.clone());
    for c in copies {
        let Some(Version::Object(mine)) = c.meta.versions.iter().find(|x| same_version(x, &wanted))
        else {
            continue;
        };
        let Some(slot) = mine.erasure.index.checked_sub(1).filter(|i| *i < total) else {
            continue;
        };
        if out[slot].is_some() {
            continue;
        }
        out[slot] = Some(match c.meta.inline_data(mine.version_id.as_deref())? {
            Some(data) => ShardSource::Inline(data.to_vec()),
            None => ShardSource::Dir(c.dir.join(&mine.data_dir)),
        });
    }
    Ok(out)
}

/// Where one shard of a version is.
#[derive(Debug, Clone)]
pub enum ShardSource {
    /// Inline in a drive's xl.meta (single-part versions).
    Inline(Vec<u8>),
    /// The data directory on a drive holding `part.N`.
    Dir(PathBuf),
}

/// Why a version could not be put back together.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// Too few good shards for a block.
    #[error(
        "part {part}, block {block}: only {good} of {total} shards intact ({rotten} failing their bitrot hash, the others missing or short), {need} needed"
    )]
    TooFewShards {
        /// Part number.
        part: u32,
        /// Block index within the part.
        block: u64,
        /// Good shards.
        good: usize,
        /// Shards read whole that failed their bitrot hash.
        rotten: usize,
        /// Shards in the set.
        total: usize,
        /// Shards needed.
        need: usize,
    },
    /// The erasure layout in xl.meta is not one MinIO writes.
    #[error("invalid erasure layout ({0}+{1})")]
    Layout(usize, usize),
}

/// What reading found besides the bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    /// Shard blocks left out (missing, short or failing their hash) and rebuilt from parity.
    pub healed: u64,
}

fn open(src: &Option<ShardSource>, part: u32) -> Option<Box<dyn Read>> {
    match src.as_ref()? {
        ShardSource::Inline(data) => Some(Box::new(std::io::Cursor::new(data.clone()))),
        ShardSource::Dir(dir) => std::fs::File::open(dir.join(format!("part.{part}")))
            .ok()
            .map(|f| Box::new(std::io::BufReader::with_capacity(1 << 20, f)) as Box<dyn Read>),
    }
}

/// Reads every part of `v` from `shards` (indexed by shard number − 1), handing each block's
/// bytes to `on_block(part, bytes)` in order and calling `on_part_end(part)` after each part.
/// The sinks' errors (`E`) end the read.
pub fn read_parts<E: From<ErasureError>>(
    v: &ObjectVersion,
    shards: &[Option<ShardSource>],
    mut on_block: impl FnMut(u32, &[u8]) -> Result<(), E>,
    mut on_part_end: impl FnMut(u32) -> Result<(), E>,
) -> Result<ReadStats, E> {
    let (data, parity) = (v.erasure.data, v.erasure.parity);
    let total = data + parity;
    if data == 0 || total > 256 || shards.len() != total {
        return Err(ErasureError::Layout(data, parity).into());
    }
    let codec = if parity > 0 {
        Some(ReedSolomon::new(data, parity).map_err(|_| ErasureError::Layout(data, parity))?)
    } else {
        None
    };
    let block_size = v.erasure.block_size;
    let mut stats = ReadStats::default();
    for part in &v.parts {
        let mut readers: Vec<Option<Box<dyn Read>>> =
            shards.iter().map(|s| open(s, part.number)).collect();
        let mut left = part.size;
        let mut block = 0u64;
        let mut out = Vec::with_capacity(block_size as usize);
        while left > 0 {
            let block_len = block_size.min(left);
            let shard_len = block_len.div_ceil(data as u64) as usize;
            let mut pieces: Vec<Option<Vec<u8>>> = Vec::with_capacity(total);
            let mut rotten = 0;
            for r in readers.iter_mut() {
                let piece = r.as_mut().and_then(|rd| {
                    let mut buf = vec![0u8; HASH + shard_len];
                    match rd.read_exact(&mut buf) {
                        Ok(()) => Some(buf),
                        Err(_) => None,
                    }
                });
                let good = match piece {
                    None => {
                        *r = None; // gone or short: nothing further of it is aligned
                        None
                    }
                    Some(buf) if bitrot::hash(&buf[HASH..]) == buf[..HASH] => {
                        Some(buf[HASH..].to_vec())
                    }
                    Some(_) => {
                        rotten += 1; // the reader stays aligned for the next block
                        None
                    }
                };
                pieces.push(good);
            }
            let good = pieces.iter().filter(|p| p.is_some()).count();
            let missing_data = pieces[..data].iter().filter(|p| p.is_none()).count();
            if missing_data > 0 {
                let too_few = ErasureError::TooFewShards {
                    part: part.number,
                    block,
                    good,
                    rotten,
                    total,
                    need: data,
                };
                match codec.as_ref().filter(|_| good >= data) {
                    Some(c) => c.reconstruct_data(&mut pieces).map_err(|_| too_few)?,
                    None => return Err(too_few.into()),
                }
            }
            stats.healed += (total - good) as u64;
            out.clear();
            for p in &pieces[..data] {
                out.extend_from_slice(p.as_deref().expect("rebuilt"));
            }
            out.truncate(block_len as usize);
            on_block(part.number, &out)?;
            left -= block_len;
            block += 1;
        }
        on_part_end(part.number)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::xl_meta::{Erasure, Part};

    fn version(data: usize, parity: usize, sizes: &[u64], block: u64) -> ObjectVersion {
        ObjectVersion {
            version_id: None,
            data_dir: String::new(),
            erasure: Erasure {
                data,
                parity,
                block_size: block,
                index: 1,
                distribution: Vec::new(),
                checksum_algo: 1,
            },
            parts: sizes
                .iter()
                .enumerate()
                .map(|(i, s)| Part {
                    number: i as u32 + 1,
                    size: *s,
                    actual_size: *s as i64,
                    etag: None,
                })
                .collect(),
            size: sizes.iter().sum::<u64>() as i64,
            mod_time_ns: 0,
            meta_sys: Default::default(),
            meta_user: Default::default(),
        }
    }

    /// Shard streams of `body` as MinIO lays them out: per block, each shard behind its hash.
    fn encode(body: &[u8], data: usize, parity: usize, block: usize) -> Vec<Vec<u8>> {
        let rs = ReedSolomon::new(data, parity).unwrap();
        let mut files = vec![Vec::new(); data + parity];
        for chunk in body.chunks(block) {
            let per = chunk.len().div_ceil(data);
            let mut shards: Vec<Vec<u8>> = (0..data + parity)
                .map(|i| {
                    let mut s = chunk
                        .get(i * per..((i + 1) * per).min(chunk.len()))
                        .unwrap_or(&[])
                        .to_vec();
                    s.resize(per, 0);
                    s
                })
                .collect();
            rs.encode(&mut shards).unwrap();
            for (f, s) in files.iter_mut().zip(&shards) {
                f.extend_from_slice(&bitrot::hash(s));
                f.extend_from_slice(s);
            }
        }
        files
    }

    fn read(
        v: &ObjectVersion,
        shards: &[Option<ShardSource>],
    ) -> Result<(Vec<u8>, ReadStats), ErasureError> {
        let mut got = Vec::new();
        let stats = read_parts::<ErasureError>(
            v,
            shards,
            |_, b| {
                got.extend_from_slice(b);
                Ok(())
            },
            |_| Ok(()),
        )?;
        Ok((got, stats))
    }

    #[test]
    fn rebuilds_lost_and_rotten_shards() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let v = version(2, 2, &[body.len() as u64], 4096);
        let files = encode(&body, 2, 2, 4096);
        let all: Vec<Option<ShardSource>> = files
            .iter()
            .map(|f| Some(ShardSource::Inline(f.clone())))
            .collect();
        let (got, stats) = read(&v, &all).unwrap();
        assert!(got == body && stats.healed == 0);
        // One drive gone and one shard block of another rotten: still whole.
        let mut damaged = all.clone();
        damaged[0] = None;
        let mut rotten = files[1].clone();
        rotten[HASH + 10] ^= 1;
        damaged[1] = Some(ShardSource::Inline(rotten));
        let (got, stats) = read(&v, &damaged).unwrap();
        assert!(got == body);
        assert_eq!(stats.healed, 3 + 1);
        // Three of four gone: an error naming the block.
        let mut lost = damaged.clone();
        lost[2] = None;
        assert!(matches!(
            read(&v, &lost),
            Err(ErasureError::TooFewShards {
                part: 1,
                block: 0,
                good: 1,
                ..
            })
        ));
    }
}
