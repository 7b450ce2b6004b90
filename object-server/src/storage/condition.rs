//! Conditional writes (`If-Match`, `If-None-Match`).
//!
//! Clients build locks on conditional writes (`If-None-Match: *` succeeds for exactly one of
//! many writers of a new key), so the condition is decided at the commit, against the key's
//! latest version as it is then, under a lock that every commit of that key holds from the check
//! to the rename, in every process serving the directory: the `versions/` lock of a versioned key,
//! the key's stripe lock ([`super::locks::KeyStripeLock`]) of an unversioned one (see
//! [`super::locks`]). A check before the body is read only answers early; it decides nothing.
use super::StorageError;

/// One side of a write condition: any object at all (`*`) or one ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    /// `*`.
    Any,
    /// An ETag value, without quotes.
    Tag(String),
}

impl EtagMatch {
    fn matches(&self, etag: &str) -> bool {
        match self {
            EtagMatch::Any => true,
            EtagMatch::Tag(t) => t == etag,
        }
    }
}

/// The preconditions of a write (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// `If-Match`: the key's latest version must exist and match.
    pub if_match: Option<EtagMatch>,
    /// `If-None-Match`: the key's latest version must not match (with `*`: must not exist).
    pub if_none_match: Option<EtagMatch>,
}

impl WriteCondition {
    /// Whether there is nothing to check.
    pub fn is_none(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Decides the condition against the ETag of the key's latest version (`None`: no object,
    /// or a delete marker). [`StorageError::PreconditionFailed`], or
    /// [`StorageError::NoSuchKey`] for `If-Match` on a key without an object (as AWS answers).
    pub fn check(&self, current: Option<&str>) -> Result<(), StorageError> {
        if let (Some(c), Some(cur)) = (&self.if_none_match, current)
            && c.matches(cur)
        {
            return Err(StorageError::PreconditionFailed);
        }
        if let Some(c) = &self.if_match {
            match current {
                None => return Err(StorageError::NoSuchKey),
                Some(cur) if !c.matches(cur) => return Err(StorageError::PreconditionFailed),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(if_match: Option<EtagMatch>, if_none_match: Option<EtagMatch>) -> WriteCondition {
        WriteCondition {
            if_match,
            if_none_match,
        }
    }

    #[test]
    fn conditions_decide_as_aws() {
        let tag = |t: &str| Some(EtagMatch::Tag(t.to_owned()));
        let any = Some(EtagMatch::Any);
        let failed =
            |r: Result<(), StorageError>| matches!(r, Err(StorageError::PreconditionFailed));
        assert!(WriteCondition::default().check(Some("a")).is_ok());
        assert!(WriteCondition::default().check(None).is_ok());
        // If-None-Match: * is "create only".
        assert!(cond(None, any.clone()).check(None).is_ok());
        assert!(failed(cond(None, any.clone()).check(Some("a"))));
        assert!(failed(cond(None, tag("a")).check(Some("a"))));
        assert!(cond(None, tag("a")).check(Some("b")).is_ok());
        // If-Match: the object must be there, and match.
        assert!(matches!(
            cond(tag("a"), None).check(None),
            Err(StorageError::NoSuchKey)
        ));
        assert!(matches!(
            cond(any.clone(), None).check(None),
            Err(StorageError::NoSuchKey)
        ));
        assert!(cond(tag("a"), None).check(Some("a")).is_ok());
        assert!(cond(any, None).check(Some("a")).is_ok());
        assert!(failed(cond(tag("a"), None).check(Some("b"))));
    }
}
