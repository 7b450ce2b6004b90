//! A stored key ("key version") and its keystore encoding: base64 of KES's protobuf
//! `KeyVersion` (current), or the legacy JSON `{"bytes","algorithm","created_at","created_by"}`.
//! A rotated key adds a field to the protobuf form that KES skips: see [`super::ring`].

use super::{Cipher, HmacKey, SecretKey};
use crate::auth::Identity;
use base64::{Engine, engine::general_purpose::STANDARD};
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

/// A master key as stored in a keystore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// The AEAD key.
    pub key: SecretKey,
    /// The HMAC key (absent in keys written by old KES versions).
    pub hmac: Option<HmacKey>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Identity that created the key.
    pub created_by: Identity,
}

/// Why a stored key could not be decoded.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Neither JSON nor base64 protobuf.
    #[error("invalid key encoding")]
    Encoding,
    /// A field has an invalid value (the text names which).
    #[error("invalid key: {0}")]
    Field(&'static str),
}

pub(super) mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SecretKey {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(uint32, tag = "2")]
        pub r#type: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HmacKey {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(uint32, tag = "2")]
        pub hash: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyVersion {
        #[prost(message, optional, tag = "1")]
        pub key: Option<SecretKey>,
        #[prost(message, optional, tag = "2")]
        pub hmac_key: Option<HmacKey>,
        #[prost(message, optional, tag = "3")]
        pub created_at: Option<Timestamp>,
        #[prost(string, tag = "4")]
        pub created_by: String,
        /// Coffer's key versions (`super::super::ring`); absent in a key never rotated, and
        /// a field number KES does not use, so KES's decoder skips it.
        #[prost(message, optional, tag = "1701")]
        pub coffer_ring: Option<Ring>,
    }
    /// The versions of a rotated key other than the newest (which is the enclosing message).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ring {
        #[prost(uint32, tag = "1")]
        pub newest: u32,
        #[prost(uint32, tag = "2")]
        pub min_version: u32,
        #[prost(message, repeated, tag = "3")]
        pub older: Vec<Older>,
    }
    /// One older version: its number and the key (fields as in `KeyVersion`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Older {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(message, optional, tag = "2")]
        pub key: Option<KeyVersion>,
    }
}

const HASH_SHA256: u32 = 1;

impl KeyVersion {
    /// A fresh random key with an HMAC key, created now by `by`.
    pub fn generate(cipher: Cipher, by: Identity) -> Self {
        KeyVersion {
            key: SecretKey::generate(cipher),
            hmac: Some(HmacKey::generate()),
            created_at: now(),
            created_by: by,
        }
    }

    /// Encodes as current KES does: base64(protobuf KeyVersion).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode_pb(self.to_pb())
    }

    /// The protobuf message (without a ring).
    pub(super) fn to_pb(&self) -> pb::KeyVersion {
        pb::KeyVersion {
            key: Some(pb::SecretKey {
                key: self.key.bytes().to_vec(),
                r#type: self.key.cipher().pb_type(),
            }),
            hmac_key: self.hmac.as_ref().map(|h| pb::HmacKey {
                key: h.bytes().to_vec(),
                hash: HASH_SHA256,
            }),
            created_at: Some(pb::Timestamp {
                seconds: self.created_at.unix_timestamp(),
                nanos: self.created_at.nanosecond() as i32,
            }),
            created_by: self.created_by.to_string(),
            coffer_ring: None,
        }
    }

    /// Decodes a stored key: base64 protobuf, or legacy JSON. A rotated key decodes as its
    /// newest version (as KES reads it).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        match decode_stored(b)? {
            Stored::Json(v) => Ok(*v),
            Stored::Pb(mut msg) => {
                let r = Self::from_pb(&msg);
                wipe(&mut msg);
                r
            }
        }
    }

    /// The key of a protobuf message (its ring, if any, aside).
    pub(super) fn from_pb(msg: &pb::KeyVersion) -> Result<Self, DecodeError> {
        let k = msg.key.as_ref().ok_or(DecodeError::Field("key"))?;
        let cipher = Cipher::from_pb_type(k.r#type).ok_or(DecodeError::Field("key.type"))?;
        let key = SecretKey::new(cipher, &k.key).map_err(|_| DecodeError::Field("key.key"))?;
        let hmac = match &msg.hmac_key {
            Some(h) if h.hash != HASH_SHA256 => {
                return Err(DecodeError::Field("hmac_key.hash"));
            }
            Some(h) => Some(HmacKey::new(&h.key).map_err(|_| DecodeError::Field("hmac_key.key"))?),
            None => None,
        };
        let created_at = match &msg.created_at {
            Some(t) => OffsetDateTime::from_unix_timestamp(t.seconds)
                .ok()
                .and_then(|d| {
                    d.replace_nanosecond(t.nanos.clamp(0, 999_999_999) as u32)
                        .ok()
                })
                .ok_or(DecodeError::Field("created_at"))?,
            None => OffsetDateTime::UNIX_EPOCH,
        };
        Ok(KeyVersion {
            key,
            hmac,
            created_at,
            created_by: Identity::new(&msg.created_by),
        })
    }

    fn decode_json(b: &[u8]) -> Result<Self, DecodeError> {
        #[derive(serde::Deserialize, zeroize::ZeroizeOnDrop)]
        struct Json {
            bytes: String,
            #[serde(default)]
            #[zeroize(skip)]
            algorithm: String,
            #[serde(default, with = "time::serde::rfc3339::option")]
            #[zeroize(skip)]
            created_at: Option<OffsetDateTime>,
            #[serde(default)]
            #[zeroize(skip)]
            created_by: String,
        }
        let j: Json = serde_json::from_slice(b).map_err(|_| DecodeError::Encoding)?;
        let cipher = if j.algorithm.is_empty() {
            Cipher::Aes256
        } else {
            Cipher::parse(&j.algorithm).ok_or(DecodeError::Field("algorithm"))?
        };
        let bytes = Zeroizing::new(
            STANDARD
                .decode(&j.bytes)
                .map_err(|_| DecodeError::Field("bytes"))?,
        );
        let key = SecretKey::new(cipher, &bytes).map_err(|_| DecodeError::Field("bytes"))?;
        Ok(KeyVersion {
            key,
            hmac: None,
            created_at: j.created_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            created_by: Identity::new(&j.created_by),
        })
    }
}

/// A stored key, parsed but not yet checked: legacy JSON, or a protobuf message.
pub(super) enum Stored {
    Json(Box<KeyVersion>),
    Pb(pb::KeyVersion),
}

/// Parses what a keystore holds (the caller wipes a returned message with [`wipe`]).
pub(super) fn decode_stored(b: &[u8]) -> Result<Stored, DecodeError> {
    let trimmed = b.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        return KeyVersion::decode_json(trimmed).map(|v| Stored::Json(Box::new(v)));
    }
    use prost::Message;
    let raw = Zeroizing::new(
        STANDARD
            .decode(trimmed)
            .map_err(|_| DecodeError::Encoding)?,
    );
    pb::KeyVersion::decode(&raw[..])
        .map(Stored::Pb)
        .map_err(|_| DecodeError::Encoding)
}

/// base64(protobuf), the message wiped afterwards.
pub(super) fn encode_pb(mut msg: pb::KeyVersion) -> Zeroizing<Vec<u8>> {
    use prost::Message;
    let raw = Zeroizing::new(msg.encode_to_vec());
    wipe(&mut msg);
    Zeroizing::new(STANDARD.encode(&raw[..]).into_bytes())
}

/// Zeroizes the key bytes of a message, its ring's included.
pub(super) fn wipe(msg: &mut pb::KeyVersion) {
    if let Some(k) = msg.key.as_mut() {
        k.key.zeroize();
    }
    if let Some(h) = msg.hmac_key.as_mut() {
        h.key.zeroize();
    }
    if let Some(r) = msg.coffer_ring.as_mut() {
        for o in &mut r.older {
            if let Some(k) = o.key.as_mut() {
                wipe(k);
            }
        }
    }
}

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_round_trip() {
        let v = KeyVersion::generate(Cipher::ChaCha20, Identity::new("abc"));
        let enc = v.encode();
        let back = KeyVersion::decode(&enc).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn decodes_known_protobuf_bytes() {
        // Hand-built protobuf: key{key=32×0x11,type=1}, hmac{key=32×0x22,hash=1},
        // created_at{seconds=1700000000,nanos=5}, created_by="id".
        let mut raw = vec![0x0a, 36, 0x0a, 32];
        raw.extend_from_slice(&[0x11; 32]);
        raw.extend_from_slice(&[0x10, 1, 0x12, 36, 0x0a, 32]);
        raw.extend_from_slice(&[0x22; 32]);
        raw.extend_from_slice(&[0x10, 1]);
        raw.extend_from_slice(&[0x1a, 8, 0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06, 0x10, 5]);
        raw.extend_from_slice(&[0x22, 2, b'i', b'd']);
        let v = KeyVersion::decode(STANDARD.encode(&raw).as_bytes()).unwrap();
        assert_eq!(v.key.cipher(), Cipher::Aes256);
        assert_eq!(v.key.bytes(), &[0x11; 32]);
        assert_eq!(v.hmac.unwrap().bytes(), &[0x22; 32]);
        assert_eq!(v.created_at.unix_timestamp(), 1_700_000_000);
        assert_eq!(v.created_at.nanosecond(), 5);
        assert_eq!(v.created_by.as_str(), "id");
        // Our encoder produces exactly these bytes for the same value.
        let again = KeyVersion {
            key: SecretKey::new(Cipher::Aes256, &[0x11; 32]).unwrap(),
            hmac: Some(HmacKey::new(&[0x22; 32]).unwrap()),
            created_at: OffsetDateTime::from_unix_timestamp(1_700_000_000)
                .unwrap()
                .replace_nanosecond(5)
                .unwrap(),
            created_by: Identity::new("id"),
        };
        assert_eq!(&again.encode()[..], STANDARD.encode(&raw).as_bytes());
    }

    #[test]
    fn legacy_json() {
        let json = format!(
            r#"{{"bytes":"{}","algorithm":"XCHACHA20-POLY1305","created_at":"2021-01-02T03:04:05Z","created_by":"me"}}"#,
            STANDARD.encode([5u8; 32])
        );
        let v = KeyVersion::decode(json.as_bytes()).unwrap();
        assert_eq!(v.key.cipher(), Cipher::ChaCha20);
        assert!(v.hmac.is_none());
        assert_eq!(v.created_at.year(), 2021);
        let plain = format!(r#"{{"bytes":"{}"}}"#, STANDARD.encode([5u8; 32]));
        assert_eq!(
            KeyVersion::decode(plain.as_bytes()).unwrap().key.cipher(),
            Cipher::Aes256
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(KeyVersion::decode(b"!!!"), Err(DecodeError::Encoding));
        assert_eq!(
            KeyVersion::decode(br#"{"bytes":"AAAA"}"#),
            Err(DecodeError::Field("bytes"))
        );
    }
}
