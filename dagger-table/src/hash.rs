//! Hashing keys in arrow's row format, and an index of distinct keys stored back to back.

use hashbrown::HashTable;

/// A fast hash of a key's bytes (keys are short: 9 bytes for an Int64): eight bytes at a
/// time multiplied in, then murmur3's finaliser, so that hashbrown's high control bits
/// and low position bits both vary.
#[inline]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        h = (h ^ word).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Which of `buckets` a key of hash `hash` goes to: the hash mixed again, so that the
/// keys of one bucket still differ in every bit the table inside the bucket uses.
#[inline]
pub(crate) fn bucket_of(hash: u64, buckets: usize) -> usize {
    let h = (hash ^ (hash >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((h >> 32) % buckets as u64) as usize
}

/// Distinct keys, numbered in order of first appearance, stored back to back with their
/// hashes; found by hash without an allocation per key.
#[derive(Clone, Default)]
pub(crate) struct KeyIndex {
    bytes: Vec<u8>,
    /// Key `g` is `bytes[ends[g - 1]..ends[g]]`.
    ends: Vec<usize>,
    hashes: Vec<u64>,
    table: HashTable<u32>,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex")
            .field("keys", &self.len())
            .finish()
    }
}

impl KeyIndex {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn key(&self, g: usize) -> &[u8] {
        let start = if g == 0 { 0 } else { self.ends[g - 1] };
        &self.bytes[start..self.ends[g]]
    }

    pub(crate) fn hash(&self, g: usize) -> u64 {
        self.hashes[g]
    }

    /// The number of `key` (of hash `hash`), and whether it was added now.
    #[inline]
    pub(crate) fn find_or_insert(&mut self, key: &[u8], hash: u64) -> (usize, bool) {
        let (bytes, ends) = (&self.bytes, &self.ends);
        let key_of = |g: u32| {
            let g = g as usize;
            let start = if g == 0 { 0 } else { ends[g - 1] };
            &bytes[start..ends[g]]
        };
        if let Some(&g) = self.table.find(hash, |&g| key_of(g) == key) {
            return (g as usize, false);
        }
        let g = self.ends.len();
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table
            .insert_unique(hash, g as u32, |&g| hashes[g as usize]);
        (g, true)
    }
}
