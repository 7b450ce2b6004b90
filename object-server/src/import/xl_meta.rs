//! MinIO's `xl.meta`: every version of one object, read from one drive.
//!
//! Layout (format 1.3, what MinIO has written since 2021; facts from MinIO's public
//! `cmd/xl-storage-format-v2.go` and `cmd/xl-storage-meta-inline.go`):
//!
//! ```text
//! "XL2 " ‖ major u16 LE ‖ minor u16 LE
//! bin32( uint header-version ‖ uint meta-version ‖ int count
//!        ‖ count × ( bin(header tuple) ‖ bin(version map) ) )      versions newest first
//! uint32 xxHash64(the bin32's payload) as u32                     checked here
//! inline data: 0x01 ‖ map{ version id or "null" → bin(shard) }    small objects' bytes
//! ```
//!
//! A version map is `{"Type": 1 object | 2 delete marker | 3 legacy, "V2Obj" | "DelObj": {...}}`;
//! the object's fields are the ones [`ObjectVersion`] keeps. Everything is parsed with
//! `rmp`/`rmp-serde`; nothing here trusts a length it has not checked against the buffer.
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_bytes::ByteBuf;

/// Why an `xl.meta` could not be read. Names the part that is wrong, never its content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XlMetaError {
    /// Not an `XL2 ` file.
    #[error("not an xl.meta file (bad header)")]
    NotXlMeta,
    /// A format this importer does not read (older than 1.3, or newer than MinIO's 1.x).
    #[error("xl.meta format {0}.{1} is not supported (only 1.3)")]
    Unsupported(u16, u16),
    /// The file ends or is malformed inside the named section.
    #[error("xl.meta is truncated or malformed ({0})")]
    Malformed(&'static str),
    /// The index's checksum does not match: the file was changed or damaged.
    #[error("xl.meta checksum mismatch")]
    Checksum,
}

/// One version of an object, newest first in [`XlMeta::versions`].
#[derive(Debug, Clone)]
pub enum Version {
    /// An object version with data.
    Object(ObjectVersion),
    /// A delete marker.
    DeleteMarker(DeleteMarker),
    /// An object of MinIO's older `xl.json` format kept inside xl.meta (not imported).
    Legacy,
}

/// An object version as MinIO stored it.
#[derive(Debug, Clone)]
pub struct ObjectVersion {
    /// The version id (`None`: the null version).
    pub version_id: Option<String>,
    /// The directory (a UUID) holding the part files, unless the data is inline.
    pub data_dir: String,
    /// Erasure coding: data blocks, parity blocks, block size, this drive's index (1-based),
    /// and the distribution of shards over the set's drives.
    pub erasure: Erasure,
    /// Parts in order.
    pub parts: Vec<Part>,
    /// Size as stored (ciphertext size for encrypted objects).
    pub size: i64,
    /// Modification time, Unix nanoseconds.
    pub mod_time_ns: i64,
    /// MinIO's internal metadata (`x-minio-internal-*`, also the SSE keys).
    pub meta_sys: BTreeMap<String, Vec<u8>>,
    /// Metadata of the user and the S3 headers (`content-type`, `etag`, `X-Amz-Meta-*`,
    /// `X-Amz-Tagging`, object lock, SSE headers and MinIO's internal ones).
    pub meta_user: BTreeMap<String, String>,
}

/// Erasure coding of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// Data shards per block.
    pub data: usize,
    /// Parity shards per block.
    pub parity: usize,
    /// Plaintext bytes per erasure block.
    pub block_size: u64,
    /// This drive's shard index (1-based).
    pub index: usize,
    /// Shard number (1-based) of each drive of the set.
    pub distribution: Vec<u8>,
    /// The bitrot hash algorithm (1: HighwayHash-256, streaming).
    pub checksum_algo: u8,
}

/// One part of an object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Part number (`part.N` in the data directory).
    pub number: u32,
    /// Bytes stored (ciphertext size for encrypted objects).
    pub size: u64,
    /// Bytes of the plaintext (what the client sent).
    pub actual_size: i64,
    /// The part's ETag, if MinIO kept it.
    pub etag: Option<String>,
}

/// A delete marker.
#[derive(Debug, Clone)]
pub struct DeleteMarker {
    /// The version id (`None`: the null version).
    pub version_id: Option<String>,
    /// Modification time, Unix nanoseconds.
    pub mod_time_ns: i64,
}

impl Version {
    /// The version id (`None` for the null version or a legacy object).
    pub fn version_id(&self) -> Option<&str> {
        match self {
            Version::Object(o) => o.version_id.as_deref(),
            Version::DeleteMarker(d) => d.version_id.as_deref(),
            Version::Legacy => None,
        }
    }
}

/// An `xl.meta` read: its versions newest first and its inline data.
#[derive(Debug, Clone)]
pub struct XlMeta {
    /// Every version, newest first.
    pub versions: Vec<Version>,
    inline: Vec<u8>,
}

#[derive(Deserialize)]
struct RawVersion {
    #[serde(rename = "Type")]
    kind: u8,
    #[serde(rename = "V2Obj", default)]
    object: Option<RawObject>,
    #[serde(rename = "DelObj", default)]
    delete: Option<RawDelete>,
}

#[derive(Deserialize)]
struct RawDelete {
    #[serde(rename = "ID")]
    id: ByteBuf,
    #[serde(rename = "MTime")]
    mod_time: i64,
}

#[derive(Deserialize)]
struct RawObject {
    #[serde(rename = "ID")]
    id: ByteBuf,
    #[serde(rename = "DDir")]
    data_dir: ByteBuf,
    #[serde(rename = "EcM")]
    ec_m: i64,
    #[serde(rename = "EcN")]
    ec_n: i64,
    #[serde(rename = "EcBSize")]
    ec_block_size: i64,
    #[serde(rename = "EcIndex")]
    ec_index: i64,
    #[serde(rename = "EcDist", default)]
    ec_dist: Option<ByteBuf>,
    #[serde(rename = "CSumAlgo")]
    checksum_algo: u8,
    #[serde(rename = "PartNums", default)]
    part_numbers: Option<Vec<i64>>,
    #[serde(rename = "PartETags", default)]
    part_etags: Option<Vec<String>>,
    #[serde(rename = "PartSizes", default)]
    part_sizes: Option<Vec<i64>>,
    #[serde(rename = "PartASizes", default)]
    part_actual_sizes: Option<Vec<i64>>,
    #[serde(rename = "Size")]
    size: i64,
    #[serde(rename = "MTime")]
    mod_time: i64,
    #[serde(rename = "MetaSys", default)]
    meta_sys: Option<BTreeMap<String, ByteBuf>>,
    #[serde(rename = "MetaUsr", default)]
    meta_user: Option<BTreeMap<String, String>>,
}

/// A version id of 16 bytes as MinIO names it: all zero is the null version, else a UUID.
fn version_id(raw: &[u8]) -> Result<Option<String>, XlMetaError> {
    let id: [u8; 16] = raw
        .try_into()
        .map_err(|_| XlMetaError::Malformed("version id"))?;
    Ok((id != [0; 16]).then(|| uuid_string(&id)))
}

/// The canonical text form of a UUID (8-4-4-4-12 lower-case hex).
pub fn uuid_string(id: &[u8; 16]) -> String {
    let h = hex::encode(id);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn non_negative(v: i64, what: &'static str) -> Result<u64, XlMetaError> {
    u64::try_from(v).map_err(|_| XlMetaError::Malformed(what))
}

impl RawObject {
    fn into_version(self) -> Result<ObjectVersion, XlMetaError> {
        let data_dir: [u8; 16] = self
            .data_dir
            .as_slice()
            .try_into()
            .map_err(|_| XlMetaError::Malformed("data dir"))?;
        let numbers = self.part_numbers.unwrap_or_default();
        let sizes = self.part_sizes.unwrap_or_default();
        let actual = self.part_actual_sizes.unwrap_or_default();
        let etags = self.part_etags.unwrap_or_default();
        if sizes.len() != numbers.len()
            || (!actual.is_empty() && actual.len() != numbers.len())
            || (!etags.is_empty() && etags.len() != numbers.len())
        {
            return Err(XlMetaError::Malformed("part lists"));
        }
        let mut parts = Vec::with_capacity(numbers.len());
        for (i, n) in numbers.iter().enumerate() {
            parts.push(Part {
                number: u32::try_from(*n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(XlMetaError::Malformed("part number"))?,
                size: non_negative(sizes[i], "part size")?,
                actual_size: actual.get(i).copied().unwrap_or(sizes[i]),
                etag: etags.get(i).filter(|e| !e.is_empty()).cloned(),
            });
        }
        let erasure = Erasure {
            data: non_negative(self.ec_m, "erasure data blocks")? as usize,
            parity: non_negative(self.ec_n, "erasure parity blocks")? as usize,
            block_size: non_negative(self.ec_block_size, "erasure block size")?,
            index: non_negative(self.ec_index, "erasure index")? as usize,
            distribution: self.ec_dist.map(ByteBuf::into_vec).unwrap_or_default(),
            checksum_algo: self.checksum_algo,
        };
        if erasure.data == 0 || erasure.block_size == 0 {
            return Err(XlMetaError::Malformed("erasure layout"));
        }
        Ok(ObjectVersion {
            version_id: version_id(&self.id)?,
            data_dir: uuid_string(&data_dir),
            erasure,
            parts,
            size: self.size,
            mod_time_ns: self.mod_time,
            meta_sys: self
                .meta_sys
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_vec()))
                .collect(),
            meta_user: self.meta_user.unwrap_or_default(),
        })
    }
}

/// Reads a MessagePack `bin` (any width) from the front of `buf`.
fn take_bin<'a>(buf: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], XlMetaError> {
    let len = rmp::decode::read_bin_len(buf).map_err(|_| XlMetaError::Malformed(what))? as usize;
    if buf.len() < len {
        return Err(XlMetaError::Malformed(what));
    }
    let (bin, rest) = buf.split_at(len);
    *buf = rest;
    Ok(bin)
}

fn take_uint(buf: &mut &[u8], what: &'static str) -> Result<u64, XlMetaError> {
    rmp::decode::read_int(buf).map_err(|_| XlMetaError::Malformed(what))
}

impl XlMeta {
    /// Parses a whole `xl.meta` file.
    pub fn parse(file: &[u8]) -> Result<Self, XlMetaError> {
        if file.len() < 8 || &file[..4] != b"XL2 " {
            return Err(XlMetaError::NotXlMeta);
        }
        let major = u16::from_le_bytes([file[4], file[5]]);
        let minor = u16::from_le_bytes([file[6], file[7]]);
        if major != 1 || minor < 3 {
            return Err(XlMetaError::Unsupported(major, minor));
        }
        let mut rest = &file[8..];
        let index = take_bin(&mut rest, "version index")?;
        let crc: u32 = rmp::decode::read_u32(&mut rest)
            .map_err(|_| XlMetaError::Malformed("index checksum"))?;
        if xxhash_rust::xxh64::xxh64(index, 0) as u32 != crc {
            return Err(XlMetaError::Checksum);
        }
        let inline = rest.to_vec();
        let mut idx = index;
        let header_version = take_uint(&mut idx, "header version")?;
        let meta_version = take_uint(&mut idx, "meta version")?;
        if header_version > 3 || meta_version > 3 {
            return Err(XlMetaError::Unsupported(major, minor));
        }
        let count = take_uint(&mut idx, "version count")?;
        let mut versions = Vec::new();
        for _ in 0..count {
            let _header = take_bin(&mut idx, "version header")?;
            let meta = take_bin(&mut idx, "version")?;
            let raw: RawVersion =
                rmp_serde::from_slice(meta).map_err(|_| XlMetaError::Malformed("version"))?;
            versions.push(match raw.kind {
                1 => Version::Object(
                    raw.object
                        .ok_or(XlMetaError::Malformed("object version"))?
                        .into_version()?,
                ),
                2 => {
                    let d = raw.delete.ok_or(XlMetaError::Malformed("delete marker"))?;
                    Version::DeleteMarker(DeleteMarker {
                        version_id: version_id(&d.id)?,
                        mod_time_ns: d.mod_time,
                    })
                }
                3 => Version::Legacy,
                _ => return Err(XlMetaError::Malformed("version type")),
            });
        }
        if !idx.is_empty() {
            return Err(XlMetaError::Malformed("version index"));
        }
        Ok(Self { versions, inline })
    }

    /// The inline data of a version (keyed by its id, `null` for the null version), if any.
    pub fn inline_data(&self, version_id: Option<&str>) -> Result<Option<&[u8]>, XlMetaError> {
        let Some((&format, mut buf)) = self.inline.split_first() else {
            return Ok(None);
        };
        if format != 1 {
            return Err(XlMetaError::Malformed("inline data version"));
        }
        let want = version_id.unwrap_or("null");
        let entries = rmp::decode::read_map_len(&mut buf)
            .map_err(|_| XlMetaError::Malformed("inline data"))?;
        for _ in 0..entries {
            let key_len = rmp::decode::read_str_len(&mut buf)
                .map_err(|_| XlMetaError::Malformed("inline data"))?
                as usize;
            if buf.len() < key_len {
                return Err(XlMetaError::Malformed("inline data"));
            }
            let (key, rest) = buf.split_at(key_len);
            buf = rest;
            let value = take_bin(&mut buf, "inline data")?;
            if key == want.as_bytes() {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An xl.meta as MinIO lays it out, with one version map and optional inline data.
    pub(crate) fn file(version: &[u8], inline: &[(&str, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        rmp::encode::write_uint(&mut index, 3).unwrap();
        rmp::encode::write_uint(&mut index, 3).unwrap();
        rmp::encode::write_uint(&mut index, 1).unwrap();
        rmp::encode::write_bin(&mut index, b"header").unwrap();
        rmp::encode::write_bin(&mut index, version).unwrap();
        let mut out = b"XL2 \x01\x00\x03\x00".to_vec();
        out.push(0xc6);
        out.extend_from_slice(&(index.len() as u32).to_be_bytes());
        out.extend_from_slice(&index);
        out.push(0xce);
        out.extend_from_slice(&(xxhash_rust::xxh64::xxh64(&index, 0) as u32).to_be_bytes());
        if !inline.is_empty() {
            out.push(1);
            rmp::encode::write_map_len(&mut out, inline.len() as u32).unwrap();
            for (k, v) in inline {
                rmp::encode::write_str(&mut out, k).unwrap();
                rmp::encode::write_bin(&mut out, v).unwrap();
            }
        }
        out
    }

    #[derive(serde::Serialize)]
    struct Obj {
        #[serde(rename = "ID", with = "serde_bytes")]
        id: Vec<u8>,
        #[serde(rename = "DDir", with = "serde_bytes")]
        ddir: Vec<u8>,
        #[serde(rename = "EcM")]
        m: i64,
        #[serde(rename = "EcN")]
        n: i64,
        #[serde(rename = "EcBSize")]
        bs: i64,
        #[serde(rename = "EcIndex")]
        idx: i64,
        #[serde(rename = "CSumAlgo")]
        algo: u8,
        #[serde(rename = "PartNums")]
        nums: Vec<i64>,
        #[serde(rename = "PartSizes")]
        sizes: Vec<i64>,
        #[serde(rename = "Size")]
        size: i64,
        #[serde(rename = "MTime")]
        mtime: i64,
        #[serde(rename = "MetaUsr")]
        user: BTreeMap<String, String>,
    }

    #[derive(serde::Serialize)]
    struct Ver {
        #[serde(rename = "Type")]
        kind: u8,
        #[serde(rename = "V2Obj")]
        obj: Obj,
    }

    fn one_version() -> Vec<u8> {
        let mut user = BTreeMap::new();
        user.insert(
            "etag".to_owned(),
            "5d41402abc4b2a76b9719d911017c592".to_owned(),
        );
        let v = Ver {
            kind: 1,
            obj: Obj {
                id: vec![0x11; 16],
                ddir: vec![0x22; 16],
                m: 1,
                n: 0,
                bs: 1 << 20,
                idx: 1,
                algo: 1,
                nums: vec![1],
                sizes: vec![5],
                size: 5,
                mtime: 1_700_000_000_000_000_000,
                user,
            },
        };
        rmp_serde::to_vec_named(&v).unwrap()
    }

    #[test]
    fn reads_a_version_and_its_inline_data() {
        let id = "11111111-1111-1111-1111-111111111111";
        let f = file(&one_version(), &[("other", b"x"), (id, b"shard")]);
        let m = XlMeta::parse(&f).unwrap();
        let Version::Object(o) = &m.versions[0] else {
            panic!("an object version")
        };
        assert_eq!(o.version_id.as_deref(), Some(id));
        assert_eq!(o.data_dir, "22222222-2222-2222-2222-222222222222");
        assert_eq!(o.parts[0].number, 1);
        assert_eq!(o.meta_user["etag"], "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(m.inline_data(Some(id)).unwrap(), Some(&b"shard"[..]));
        assert_eq!(m.inline_data(None).unwrap(), None);
    }

    /// Every truncation and every flipped byte of the index is an error, never a panic or a
    /// different reading.
    #[test]
    fn truncated_or_changed_files_are_errors() {
        let f = file(&one_version(), &[]);
        for cut in 0..f.len() {
            assert!(XlMeta::parse(&f[..cut]).is_err(), "cut at {cut}");
        }
        for at in 8..f.len() {
            let mut g = f.clone();
            g[at] ^= 0x40;
            assert!(XlMeta::parse(&g).is_err(), "flip at {at}");
        }
        assert_eq!(
            XlMeta::parse(b"XL2 \x01\x00\x02\x00rest").unwrap_err(),
            XlMetaError::Unsupported(1, 2)
        );
    }
}
