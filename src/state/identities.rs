//! Compact identity sets: what a row has delivered, in a few bytes per identity.
//!
//! A busy row remembers every run, job, pull request or issue it has counted or sampled for as
//! long as the source can still change it, which can be hundreds of thousands of identities. The
//! identities themselves (`123456.2`, `pr#81`, a 40-character sha, or whatever an `exec` probe
//! prints, up to 256 bytes) are never stored: each is hashed to 64 bits ([`IdHash`]), and the set
//! keeps, per hash, the minute it was last seen. On disk the set is one base64 string of sorted
//! 12-byte records, so a million identities are 16 MB of `rows.json` whatever their length.
//!
//! Two different identities share a hash with probability about n²/2⁶⁵ (3·10⁻⁸ for a million):
//! the second would be taken as already delivered. That is the price of a bounded state store.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 64-bit hash of an identity.
pub type IdHash = u64;

/// The hash of an identity: FNV-1a with a SplitMix64 finaliser, stable across builds and
/// platforms (the state store outlives the binary that wrote it).
pub fn hash_id(id: &str) -> IdHash {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes of one stored identity (hash and last-seen minute).
pub const RECORD_BYTES: usize = 12;

/// Identity hash → the minute (Unix seconds / 60) it was last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet(HashMap<IdHash, u32>);

fn minute(unix_secs: i64) -> u32 {
    u32::try_from(unix_secs.max(0) / 60).unwrap_or(u32::MAX)
}

impl IdSet {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, h: IdHash) -> bool {
        self.0.contains_key(&h)
    }

    /// Record `h` as seen at `now` (Unix seconds).
    pub fn see(&mut self, h: IdHash, now: i64) {
        let m = minute(now);
        let e = self.0.entry(h).or_insert(m);
        *e = (*e).max(m);
    }

    /// Forget what was last seen before `cutoff` (Unix seconds).
    pub fn forget_before(&mut self, cutoff: i64) {
        let c = minute(cutoff);
        self.0.retain(|_, m| *m >= c);
    }

    /// Keep at most `max`, forgetting the longest unseen first.
    pub fn cap(&mut self, max: usize) {
        if self.0.len() <= max {
            return;
        }
        let mut by_age: Vec<(u32, IdHash)> = self.0.iter().map(|(h, m)| (*m, *h)).collect();
        by_age.sort_unstable();
        for (_, h) in by_age.iter().take(self.0.len() - max) {
            self.0.remove(h);
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut records: Vec<(&IdHash, &u32)> = self.0.iter().collect();
        records.sort_unstable();
        let mut out = Vec::with_capacity(records.len() * RECORD_BYTES);
        for (h, m) in records {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&m.to_le_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<IdSet, String> {
        if !bytes.len().is_multiple_of(RECORD_BYTES) {
            return Err(format!(
                "identity set of {} bytes is not a whole number of {RECORD_BYTES}-byte records",
                bytes.len()
            ));
        }
        let mut set = HashMap::with_capacity(bytes.len() / RECORD_BYTES);
        for r in bytes.chunks_exact(RECORD_BYTES) {
            let (h, m) = r.split_at(8);
            let h = u64::from_le_bytes(h.try_into().map_err(|_| "short record")?);
            let m = u32::from_le_bytes(m.try_into().map_err(|_| "short record")?);
            set.insert(h, m);
        }
        Ok(IdSet(set))
    }
}

impl Serialize for IdSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for IdSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdSet, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        IdSet::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_round_trip_compactly_and_forget_by_last_seen() {
        let mut s = IdSet::default();
        for i in 0..1000 {
            s.see(hash_id(&format!("run-{i}.1")), 600 * i64::from(i));
        }
        assert_eq!(s.len(), 1000);
        let json = serde_json::to_string(&s).unwrap();
        // 12 bytes a record, base64 (4/3), plus the quotes.
        assert_eq!(json.len(), 16_000 + 2);
        let back: IdSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(back.contains(hash_id("run-999.1")));
        assert!(!back.contains(hash_id("run-1000.1")));
        let mut s = back;
        s.forget_before(600 * 500);
        assert_eq!(s.len(), 500);
        s.see(hash_id("run-1.1"), 600 * 2000);
        s.cap(10);
        assert_eq!(s.len(), 10);
        assert!(s.contains(hash_id("run-1.1")), "the latest seen are kept");
        assert!(serde_json::from_str::<IdSet>("\"AAAA\"").is_err());
    }

    #[test]
    fn the_hash_is_stable_and_spreads_similar_ids() {
        // Pinned: a changed hash would make every stored identity "new" after an upgrade.
        // (Computed independently, in Python, from the definition above.)
        assert_eq!(hash_id(""), 0xc381_7c01_6ba4_ff30);
        assert_eq!(hash_id("1000000.1"), 0x3fb9_668d_47ff_b377);
        let a = hash_id("1000000.1");
        let b = hash_id("1000000.2");
        assert_ne!(a, b);
        assert!((a ^ b).count_ones() > 16, "{a:x} {b:x}");
    }
}
