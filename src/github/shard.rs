//! Splitting an organisation between jobs: `--shard K/N`.
//!
//! N CronJobs share one state store and each collects the repositories of its shard. Which
//! shard a repository belongs to is a pure function of its `owner/name` (compared without
//! case, as GitHub does), so every job agrees without talking to the others, every repository
//! belongs to exactly one shard, and the split stays put from one release to the next: the hash
//! is FNV-1a (64 bit), written out here rather than taken from `std`, whose hasher may change.

use std::fmt;
use std::str::FromStr;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole organisation: one job does every repository.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Whether `repo` (`owner/name`) is this shard's.
    pub fn owns(&self, repo: &str) -> bool {
        self.count <= 1 || shard_of(repo, self.count) == self.index
    }

    pub fn is_all(&self) -> bool {
        self.count <= 1
    }
}

/// The shard (1-based) `repo` falls in when an organisation is split in `count`.
pub fn shard_of(repo: &str, count: u32) -> u32 {
    if count <= 1 {
        return 1;
    }
    (fnv1a(repo.to_ascii_lowercase().as_bytes()) % u64::from(count)) as u32 + 1
}

/// FNV-1a, 64 bit: stable across releases and platforms.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "{text:?} is not a shard: expected K/N with 1 <= K <= N <= 1024 (e.g. 2/4: the \
                 second of four jobs)"
            )
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count || count > 1024 {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_repository_belongs_to_exactly_one_shard() {
        for n in 1..=7u32 {
            for i in 0..500 {
                let repo = format!("acme/repo-{i}");
                let owners = (1..=n)
                    .filter(|k| {
                        Shard {
                            index: *k,
                            count: n,
                        }
                        .owns(&repo)
                    })
                    .count();
                assert_eq!(owners, 1, "{repo} in {n} shards");
            }
        }
    }

    #[test]
    fn shards_are_balanced_and_stable() {
        let mut sizes = [0usize; 4];
        for i in 0..2000 {
            sizes[(shard_of(&format!("acme/service-{i}"), 4) - 1) as usize] += 1;
        }
        assert!(sizes.iter().all(|s| (400..=600).contains(s)), "{sizes:?}");
        // Pinned: a release that moved repositories between shards would double or drop them
        // while two versions run side by side.
        // (FNV-1a 64 of "acme/widgets", computed apart from this code.)
        assert_eq!(fnv1a(b"acme/widgets"), 0xb3e0_f2e6_70c1_696d);
        assert_eq!(shard_of("acme/widgets", 4), 2);
        assert_eq!(shard_of("Acme/Widgets", 4), shard_of("acme/widgets", 4));
    }

    #[test]
    fn parse_and_refuse() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", "1/2000", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("K/N"), "{e}");
        }
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }
}
