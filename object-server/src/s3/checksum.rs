//! S3's flexible checksums: the five algorithms, what a request asks for, how a value is checked,
//! and how a multipart object's checksum is formed from its parts' (AWS's "Checking object
//! integrity").
//!
//! Every checksum is of the plaintext and is stored, base64 as S3 writes it, in the object's
//! metadata (`ObjectMeta::checksums`, each part's in `PartMeta::checksums`). A multipart object's
//! checksum is either
//! - COMPOSITE: `base64(H(d1 ‖ d2 ‖ … ‖ dN))-N`, `H` the algorithm and `di` part `i`'s raw
//!   digest (CRC32, CRC32C, SHA1, SHA256), or
//! - FULL_OBJECT: the CRC of the whole object, got by combining the parts' CRCs with their sizes
//!   (CRC32, CRC32C, CRC64NVME), so no byte is read again.
//!
//! Writes that ask for no checksum get CRC64NVME, as AWS adds it by default; a multipart upload
//! created without an algorithm keeps each part's CRC64NVME and completes into a FULL_OBJECT
//! CRC64NVME.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::dto::{Checksum, ChecksumAlgorithm, ChecksumType};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::storage::ChecksumKind;

/// One of S3's checksum algorithms (stored by its S3 name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Algorithm {
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
}

impl Algorithm {
    pub(crate) const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// S3's name, also the key in stored checksum maps.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The lower-case name AWS's messages use.
    fn lower(self) -> String {
        self.name().to_ascii_lowercase()
    }

    /// The algorithm of an S3 name, in any case.
    pub(crate) fn parse(name: &str) -> Option<Algorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// The crc-fast algorithm of a CRC (`None` for the SHAs).
    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// Whether a multipart upload may form its checksum this way (AWS's table: FULL_OBJECT only
    /// for the CRCs, COMPOSITE for all but CRC64NVME).
    pub(crate) fn supports(self, kind: ChecksumKind) -> bool {
        match kind {
            ChecksumKind::FullObject => self.crc().is_some(),
            ChecksumKind::Composite => self != Algorithm::Crc64Nvme,
        }
    }

    /// The type of a multipart upload that names only the algorithm.
    pub(crate) fn default_kind(self) -> ChecksumKind {
        if self == Algorithm::Crc64Nvme {
            ChecksumKind::FullObject
        } else {
            ChecksumKind::Composite
        }
    }

    /// The algorithm as s3s's DTO.
    pub(crate) fn dto(self) -> ChecksumAlgorithm {
        ChecksumAlgorithm::from(self.name().to_owned())
    }

    /// The hash of `data` (a composite checksum's outer hash).
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Crc32 => s3s::crypto::Crc32::checksum(data).to_vec(),
            Algorithm::Crc32c => s3s::crypto::Crc32c::checksum(data).to_vec(),
            Algorithm::Crc64Nvme => s3s::crypto::Crc64Nvme::checksum(data).to_vec(),
            Algorithm::Sha1 => s3s::crypto::Sha1::checksum(data).to_vec(),
            Algorithm::Sha256 => s3s::crypto::Sha256::checksum(data).as_ref().to_vec(),
        }
    }
}

/// A checksum type as s3s's DTO.
pub(crate) fn kind_dto(kind: ChecksumKind) -> ChecksumType {
    ChecksumType::from(kind.as_str().to_owned())
}

/// The checksum type of s3s's DTO.
pub(crate) fn parse_kind(t: &ChecksumType) -> Option<ChecksumKind> {
    match t.as_str() {
        ChecksumType::FULL_OBJECT => Some(ChecksumKind::FullObject),
        ChecksumType::COMPOSITE => Some(ChecksumKind::Composite),
        _ => None,
    }
}

/// The raw digest of a base64 value, if it is one of `alg`'s length.
fn decode(alg: Algorithm, value: &str) -> Option<Vec<u8>> {
    B64.decode(value.trim())
        .ok()
        .filter(|d| d.len() == alg.digest_len())
}

/// A hasher computing every algorithm of `algos`.
pub(crate) fn hasher_for(algos: &[Algorithm]) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    for a in algos {
        match a {
            Algorithm::Crc32 => h.crc32 = Some(s3s::crypto::Crc32::new()),
            Algorithm::Crc32c => h.crc32c = Some(s3s::crypto::Crc32c::new()),
            Algorithm::Crc64Nvme => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
            Algorithm::Sha1 => h.sha1 = Some(s3s::crypto::Sha1::new()),
            Algorithm::Sha256 => h.sha256 = Some(s3s::crypto::Sha256::new()),
        }
    }
    h
}

/// Checksum values of a `Checksum` DTO, by algorithm name.
pub(crate) fn checksum_map(c: &Checksum) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (a, v) in [
        (Algorithm::Crc32, &c.checksum_crc32),
        (Algorithm::Crc32c, &c.checksum_crc32c),
        (Algorithm::Crc64Nvme, &c.checksum_crc64nvme),
        (Algorithm::Sha1, &c.checksum_sha1),
        (Algorithm::Sha256, &c.checksum_sha256),
    ] {
        if let Some(v) = v {
            m.insert(a.name().to_owned(), v.clone());
        }
    }
    m
}

/// The `Checksum` DTO of stored values, with their type.
pub(crate) fn checksum_dto(
    values: &BTreeMap<String, String>,
    kind: Option<ChecksumKind>,
) -> Checksum {
    let get = |a: Algorithm| values.get(a.name()).cloned();
    Checksum {
        checksum_crc32: get(Algorithm::Crc32),
        checksum_crc32c: get(Algorithm::Crc32c),
        checksum_crc64nvme: get(Algorithm::Crc64Nvme),
        checksum_sha1: get(Algorithm::Sha1),
        checksum_sha256: get(Algorithm::Sha256),
        checksum_type: kind.filter(|_| !values.is_empty()).map(kind_dto),
    }
}

/// The algorithms of stored values (S3's `ChecksumAlgorithm` list of a listing entry).
pub(crate) fn algorithms_of(values: &BTreeMap<String, String>) -> Option<Vec<ChecksumAlgorithm>> {
    let list: Vec<ChecksumAlgorithm> = values
        .keys()
        .filter_map(|k| Algorithm::parse(k))
        .map(Algorithm::dto)
        .collect();
    (!list.is_empty()).then_some(list)
}

fn invalid_request(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message)
}

/// Checks the `x-amz-checksum-*` values a write carries: each must be base64 of its algorithm's
/// length, and there may be only one (AWS refuses both with 400 InvalidRequest).
pub(crate) fn check_given(given: &BTreeMap<String, String>) -> S3Result<()> {
    if given.len() > 1 {
        return Err(invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
                .to_owned(),
        ));
    }
    for (name, value) in given {
        let alg = Algorithm::parse(name).expect("keys are algorithm names");
        if decode(alg, value).is_none() {
            return Err(invalid_request(format!(
                "Value for x-amz-checksum-{} header is invalid.",
                alg.lower()
            )));
        }
    }
    Ok(())
}

/// The checksum algorithms a write asks for: explicit values, the declared algorithm and the
/// trailer it announces (`x-amz-trailer`, `x-amz-sdk-checksum-algorithm`).
pub(crate) fn requested_algorithms(
    given: &BTreeMap<String, String>,
    algorithm: Option<&str>,
    headers: &http::HeaderMap,
) -> Vec<Algorithm> {
    let mut out: Vec<Algorithm> = given.keys().filter_map(|k| Algorithm::parse(k)).collect();
    out.extend(algorithm.and_then(Algorithm::parse));
    for name in ["x-amz-trailer", "x-amz-sdk-checksum-algorithm"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            for part in v.split(',') {
                out.extend(Algorithm::parse(
                    part.trim().trim_start_matches("x-amz-checksum-"),
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What a single-part write computes: what it asks for, or AWS's default CRC64NVME.
pub(crate) fn or_default(mut algos: Vec<Algorithm>) -> Vec<Algorithm> {
    if algos.is_empty() {
        algos.push(Algorithm::Crc64Nvme);
    }
    algos
}

/// BadDigest for a checksum that does not match the data.
pub(crate) fn bad_digest(alg: Algorithm) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::BadDigest,
        format!(
            "The {} you specified did not match the calculated checksum.",
            alg.lower()
        ),
    )
}

/// The refusal of a part whose checksum algorithm is not the upload's (`None`: no checksum).
pub(crate) fn type_mismatch(expected: Algorithm, actual: Option<Algorithm>) -> S3Error {
    invalid_request(format!(
        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
        expected.lower(),
        actual.map_or_else(|| "null".to_owned(), Algorithm::lower)
    ))
}

/// The checksum algorithm and type of a new multipart upload, from CreateMultipartUpload's
/// `x-amz-checksum-algorithm` and `x-amz-checksum-type`, refused as AWS refuses them.
pub(crate) fn upload_checksum(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<(Algorithm, ChecksumKind)>> {
    let alg = algorithm
        .map(|a| {
            Algorithm::parse(a.as_str()).ok_or_else(|| {
                invalid_request(
                    "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]".to_owned(),
                )
            })
        })
        .transpose()?;
    let kind = kind
        .map(|t| {
            parse_kind(t).ok_or_else(|| {
                invalid_request("Value for x-amz-checksum-type header is invalid.".to_owned())
            })
        })
        .transpose()?;
    match (alg, kind) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
                .to_owned(),
        )),
        (Some(a), None) => Ok(Some((a, a.default_kind()))),
        (Some(a), Some(k)) if a.supports(k) => Ok(Some((a, k))),
        (Some(a), Some(k)) => Err(invalid_request(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            k.as_str(),
            a.lower()
        ))),
    }
}

/// A composite checksum, `base64(H(d1 ‖ … ‖ dN))-N`, of the parts' base64 values.
pub(crate) fn composite(alg: Algorithm, parts: &[&str]) -> Option<String> {
    let mut all = Vec::with_capacity(parts.len() * alg.digest_len());
    for p in parts {
        all.extend_from_slice(&decode(alg, p)?);
    }
    Some(format!("{}-{}", B64.encode(alg.digest(&all)), parts.len()))
}

/// The CRC of a whole object from its parts' base64 CRCs and sizes, in order.
pub(crate) fn combine_crc(alg: Algorithm, parts: &[(&str, u64)]) -> Option<String> {
    let crc = alg.crc()?;
    let value = |v: &str| -> Option<u64> {
        let d = decode(alg, v)?;
        Some(d.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let mut parts = parts.iter();
    let (first, _) = parts.next()?;
    let mut acc = value(first)?;
    for (v, size) in parts {
        acc = crc_fast::checksum_combine(crc, acc, value(v)?, *size);
    }
    let bytes = acc.to_be_bytes();
    Some(B64.encode(&bytes[8 - alg.digest_len()..]))
}

/// Whether a client's value for a whole multipart object matches `stored` (a composite value
/// may be given with or without its `-N`).
pub(crate) fn matches_object(stored: &str, given: &str, kind: ChecksumKind) -> bool {
    let given = given.trim();
    stored == given
        || (kind == ChecksumKind::Composite
            && stored
                .rsplit_once('-')
                .is_some_and(|(value, _)| value == given))
}

/// A multipart upload's checksum algorithm and type, fixed by CreateMultipartUpload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadChecksum {
    pub algorithm: Algorithm,
    #[serde(rename = "type")]
    pub kind: ChecksumKind,
}

/// The checksums a part of `upload` is written with: the upload's algorithm (a part that asks for
/// another is refused, and so is one that asks for none in a COMPOSITE upload, whose object
/// checksum needs every part's), or, in an upload without one, what the part asks for and the
/// CRC64NVME the object's default checksum is combined from.
pub(crate) fn part_algorithms(
    upload: Option<UploadChecksum>,
    asked: Vec<Algorithm>,
) -> S3Result<Vec<Algorithm>> {
    match upload {
        Some(u) => {
            if let Some(other) = asked.iter().find(|a| **a != u.algorithm) {
                return Err(type_mismatch(u.algorithm, Some(*other)));
            }
            if asked.is_empty() && u.kind == ChecksumKind::Composite {
                return Err(type_mismatch(u.algorithm, None));
            }
            Ok(vec![u.algorithm])
        }
        None => {
            let mut algos = asked;
            algos.push(Algorithm::Crc64Nvme);
            algos.sort();
            algos.dedup();
            Ok(algos)
        }
    }
}

/// A part named by a CompleteMultipartUpload.
pub(crate) struct CompletingPart<'a> {
    pub number: u32,
    pub size: u64,
    /// The checksums the request lists for it.
    pub listed: BTreeMap<String, String>,
    /// The checksums stored with it when it was uploaded.
    pub stored: &'a BTreeMap<String, String>,
}

/// A multipart object's checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectChecksum {
    pub algorithm: Algorithm,
    pub kind: ChecksumKind,
    /// Base64 (`-N` appended for COMPOSITE).
    pub value: String,
}

/// Checks the part checksums a CompleteMultipartUpload lists against those stored and forms
/// the object's checksum, refusing as AWS does: a COMPOSITE upload must list every part's
/// checksum, its parts must be numbered 1, 2, … (InvalidPartOrder), a wrong value of the upload's
/// algorithm is InvalidPart, of another BadDigest.
pub(crate) fn complete(
    upload: Option<UploadChecksum>,
    parts: &[CompletingPart<'_>],
) -> S3Result<Option<ObjectChecksum>> {
    for (i, p) in parts.iter().enumerate() {
        if upload.is_some() && p.number as usize != i + 1 {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        for (name, value) in &p.listed {
            if p.stored.get(name) == Some(value) {
                continue;
            }
            let alg = Algorithm::parse(name).expect("keys are algorithm names");
            if upload.is_some_and(|u| u.algorithm == alg) {
                return Err(s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
                ));
            }
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!(
                    "The {} you specified for part {} did not match what we received.",
                    alg.lower(),
                    p.number
                ),
            ));
        }
        if let Some(u) = upload
            && u.kind == ChecksumKind::Composite
            && !p.listed.contains_key(u.algorithm.name())
        {
            return Err(invalid_request(format!(
                "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                u.algorithm.lower(),
                p.number
            )));
        }
    }
    let (algorithm, kind) = match upload {
        Some(u) => (u.algorithm, u.kind),
        None => (Algorithm::Crc64Nvme, ChecksumKind::FullObject),
    };
    let stored: Option<Vec<(&str, u64)>> = parts
        .iter()
        .map(|p| p.stored.get(algorithm.name()).map(|v| (v.as_str(), p.size)))
        .collect();
    let Some(stored) = stored else {
        // Only parts written before part checksums were kept lack them, and only in uploads
        // created then, which had no algorithm: such an object has no checksum.
        return match upload {
            None => Ok(None),
            Some(_) => Err(s3_error!(
                InternalError,
                "A part of the upload has lost its checksum."
            )),
        };
    };
    let value = match kind {
        ChecksumKind::Composite => composite(
            algorithm,
            &stored.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        ),
        ChecksumKind::FullObject => combine_crc(algorithm, &stored),
    }
    .ok_or_else(|| s3_error!(InternalError, "A part's stored checksum is damaged."))?;
    Ok(Some(ObjectChecksum {
        algorithm,
        kind,
        value,
    }))
}

/// Checks the whole-object checksum a CompleteMultipartUpload carries (`x-amz-checksum-*`)
/// against the one formed: a different value is BadDigest, another algorithm InvalidRequest.
pub(crate) fn check_object_given(
    given: &BTreeMap<String, String>,
    formed: Option<&ObjectChecksum>,
) -> S3Result<()> {
    for (name, value) in given {
        let alg = Algorithm::parse(name).expect("keys are algorithm names");
        match formed {
            Some(f) if f.algorithm == alg => {
                if !matches_object(&f.value, value, f.kind) {
                    return Err(bad_digest(alg));
                }
            }
            Some(f) => return Err(type_mismatch(f.algorithm, Some(alg))),
            None => {
                return Err(invalid_request(format!(
                    "The upload has no {} checksum to compare with.",
                    alg.lower()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(alg: Algorithm, data: &[u8]) -> String {
        let mut h = hasher_for(&[alg]);
        h.update(data);
        checksum_map(&h.finalize())[alg.name()].clone()
    }

    /// Combining the parts' CRCs gives the CRC of the whole, for every CRC and uneven sizes.
    #[test]
    fn combined_crc_is_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..300_007u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let cuts = [0usize, 1, 65_536, 65_537, 200_000, data.len()];
            let parts: Vec<(String, u64)> = cuts
                .windows(2)
                .map(|w| (b64(alg, &data[w[0]..w[1]]), (w[1] - w[0]) as u64))
                .collect();
            let refs: Vec<(&str, u64)> = parts.iter().map(|(v, s)| (v.as_str(), *s)).collect();
            assert_eq!(combine_crc(alg, &refs).unwrap(), b64(alg, &data), "{alg:?}");
            assert_eq!(
                combine_crc(alg, &refs[..1]).unwrap(),
                parts[0].0,
                "one part is its own CRC"
            );
        }
        assert_eq!(combine_crc(Algorithm::Sha256, &[("x", 1)]), None);
        assert_eq!(combine_crc(Algorithm::Crc32, &[("not base64!", 1)]), None);
    }

    /// The composite value is the hash of the concatenated raw part digests, with `-N`.
    #[test]
    fn composite_is_hash_of_part_digests() {
        let parts = [b"first part".as_slice(), b"second".as_slice()];
        for alg in [
            Algorithm::Crc32,
            Algorithm::Crc32c,
            Algorithm::Sha1,
            Algorithm::Sha256,
        ] {
            let values: Vec<String> = parts.iter().map(|p| b64(alg, p)).collect();
            let mut raw = Vec::new();
            for v in &values {
                raw.extend(B64.decode(v).unwrap());
            }
            let want = format!("{}-2", b64(alg, &raw));
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            assert_eq!(composite(alg, &refs).unwrap(), want);
            assert!(matches_object(&want, &want, ChecksumKind::Composite));
            assert!(matches_object(
                &want,
                want.rsplit_once('-').unwrap().0,
                ChecksumKind::Composite
            ));
            assert!(!matches_object(&want, &values[0], ChecksumKind::Composite));
        }
    }

    #[test]
    fn upload_checksum_follows_aws_table() {
        let alg = |s: &str| ChecksumAlgorithm::from(s.to_owned());
        let kind = |s: &str| ChecksumType::from(s.to_owned());
        assert_eq!(upload_checksum(None, None).unwrap(), None);
        assert_eq!(
            upload_checksum(Some(&alg("CRC64NVME")), None).unwrap(),
            Some((Algorithm::Crc64Nvme, ChecksumKind::FullObject))
        );
        assert_eq!(
            upload_checksum(Some(&alg("SHA256")), None).unwrap(),
            Some((Algorithm::Sha256, ChecksumKind::Composite))
        );
        assert_eq!(
            upload_checksum(Some(&alg("crc32")), Some(&kind("FULL_OBJECT"))).unwrap(),
            Some((Algorithm::Crc32, ChecksumKind::FullObject))
        );
        for (a, k) in [
            (Some("SHA256"), Some("FULL_OBJECT")),
            (Some("SHA1"), Some("FULL_OBJECT")),
            (Some("CRC64NVME"), Some("COMPOSITE")),
            (None, Some("COMPOSITE")),
            (Some("MD5"), None),
            (Some("CRC32"), Some("PARTIAL")),
        ] {
            let e = upload_checksum(a.map(alg).as_ref(), k.map(kind).as_ref()).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidRequest, "{a:?} {k:?}");
        }
    }

    #[test]
    fn given_values_are_checked() {
        let one = |a: &str, v: &str| BTreeMap::from([(a.to_owned(), v.to_owned())]);
        check_given(&one("CRC32", "AAAAAA==")).unwrap();
        check_given(&one("CRC64NVME", "AAAAAAAAAAA=")).unwrap();
        for bad in [one("CRC32", "AAAAAAAAAAA="), one("SHA1", "!!")] {
            assert_eq!(
                *check_given(&bad).unwrap_err().code(),
                S3ErrorCode::InvalidRequest
            );
        }
        let mut two = one("CRC32", "AAAAAA==");
        two.insert("CRC32C".into(), "AAAAAA==".into());
        assert!(check_given(&two).is_err());
    }
}
