//! The node's cache of requesters' expanded evaluation keys.
//!
//! Why a cache at all: a compressed key is about 86 MiB on the wire and expanding
//! it takes most of a second, while a prediction takes milliseconds; a requester
//! uploads its key once and then predicts many times. Why bounded: an expanded key
//! holds about 230 MiB, so the cache keeps at most [`KeyCacheConfig::max_keys`]
//! keys and [`KeyCacheConfig::max_bytes`] bytes, evicting the least recently used
//! key first, and drops a key unused for [`KeyCacheConfig::idle_expiry`].
//!
//! Entries are keyed by (owner, key id): a requester sees and uses only the keys it
//! registered itself. Time is passed in (`now`), so expiry is tested without
//! waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Limits of the key cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCacheConfig {
    /// Most keys held at once.
    pub max_keys: usize,
    /// Most bytes (expanded key sizes) held at once.
    pub max_bytes: u64,
    /// A key unused this long is dropped.
    pub idle_expiry: Duration,
}

impl Default for KeyCacheConfig {
    /// 4 keys, 1 GiB, one hour of disuse.
    fn default() -> Self {
        Self {
            max_keys: 4,
            max_bytes: 1 << 30,
            idle_expiry: Duration::from_secs(3600),
        }
    }
}

/// Why a key was not cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyCacheError {
    /// The key alone exceeds the cache's byte limit.
    #[error("a key of {bytes} bytes is larger than the whole key cache ({max_bytes} bytes)")]
    TooLarge {
        /// The key's size.
        bytes: u64,
        /// The cache's byte limit.
        max_bytes: u64,
    },
    /// The cache is configured to hold no keys.
    #[error("the key cache holds no keys (max_keys = 0)")]
    Disabled,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    bytes: u64,
    last_used: Instant,
}

/// A size-bounded, idle-expiring LRU map (see the module documentation).
#[derive(Debug)]
pub struct KeyCache<K, V> {
    config: KeyCacheConfig,
    entries: HashMap<K, Entry<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> KeyCache<K, V> {
    /// An empty cache with `config`'s limits.
    pub fn new(config: KeyCacheConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
        }
    }

    /// The cache's limits.
    pub fn config(&self) -> KeyCacheConfig {
        self.config
    }

    /// Drops the entries idle for longer than the expiry; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        let expiry = self.config.idle_expiry;
        self.entries
            .retain(|_, entry| now.saturating_duration_since(entry.last_used) < expiry);
        before - self.entries.len()
    }

    /// The value under `key`, marking it used at `now`.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        self.purge_expired(now);
        let entry = self.entries.get_mut(key)?;
        entry.last_used = now;
        Some(entry.value.clone())
    }

    /// Whether `key` is held (without marking it used).
    pub fn contains(&mut self, key: &K, now: Instant) -> bool {
        self.purge_expired(now);
        self.entries.contains_key(key)
    }

    /// Caches `value` (weighing `bytes`) under `key`, replacing any previous one
    /// and evicting least recently used entries until the limits hold. Returns
    /// the evicted keys.
    pub fn insert(
        &mut self,
        key: K,
        value: V,
        bytes: u64,
        now: Instant,
    ) -> Result<Vec<K>, KeyCacheError> {
        if self.config.max_keys == 0 {
            return Err(KeyCacheError::Disabled);
        }
        if bytes > self.config.max_bytes {
            return Err(KeyCacheError::TooLarge {
                bytes,
                max_bytes: self.config.max_bytes,
            });
        }
        self.purge_expired(now);
        self.entries.remove(&key);
        let mut evicted = Vec::new();
        while self.entries.len() >= self.config.max_keys
            || self.total_bytes() + bytes > self.config.max_bytes
        {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
            evicted.push(oldest);
        }
        self.entries.insert(
            key,
            Entry {
                value,
                bytes,
                last_used: now,
            },
        );
        Ok(evicted)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held (expired entries not yet purged count as held).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    pub fn total_bytes(&self) -> u64 {
        self.entries.values().map(|entry| entry.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_keys: usize, max_bytes: u64) -> KeyCache<&'static str, u32> {
        KeyCache::new(KeyCacheConfig {
            max_keys,
            max_bytes,
            idle_expiry: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_least_recently_used_key_goes_first_when_full_by_count() {
        let t0 = Instant::now();
        let mut c = cache(2, 1000);
        c.insert("a", 1, 10, t0).unwrap();
        c.insert("b", 2, 10, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(c.get(&"a", t0 + Duration::from_secs(2)), Some(1));
        let evicted = c.insert("c", 3, 10, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(evicted, vec!["b"]);
        assert_eq!(c.len(), 2);
        assert!(c.contains(&"a", t0 + Duration::from_secs(3)));
    }

    #[test]
    fn bytes_bound_the_cache_and_an_oversized_key_is_refused() {
        let t0 = Instant::now();
        let mut c = cache(10, 100);
        c.insert("a", 1, 60, t0).unwrap();
        let evicted = c.insert("b", 2, 60, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(evicted, vec!["a"]);
        assert_eq!(c.total_bytes(), 60);
        assert_eq!(
            c.insert("huge", 3, 101, t0),
            Err(KeyCacheError::TooLarge {
                bytes: 101,
                max_bytes: 100
            })
        );
        assert!(!c.contains(&"huge", t0));
    }

    #[test]
    fn idle_keys_expire_and_use_keeps_them() {
        let t0 = Instant::now();
        let mut c = cache(10, 1000);
        c.insert("a", 1, 1, t0).unwrap();
        c.insert("b", 2, 1, t0).unwrap();
        assert_eq!(c.get(&"a", t0 + Duration::from_secs(50)), Some(1));
        assert_eq!(c.get(&"b", t0 + Duration::from_secs(61)), None);
        assert_eq!(c.get(&"a", t0 + Duration::from_secs(100)), Some(1));
        assert_eq!(c.purge_expired(t0 + Duration::from_secs(161)), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn re_registering_replaces_without_evicting_others() {
        let t0 = Instant::now();
        let mut c = cache(2, 1000);
        c.insert("a", 1, 10, t0).unwrap();
        c.insert("b", 2, 10, t0).unwrap();
        assert!(c.insert("a", 9, 10, t0).unwrap().is_empty());
        assert_eq!(c.get(&"a", t0), Some(9));
        assert_eq!(c.len(), 2);
    }
}
