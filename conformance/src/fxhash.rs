//! A fast, non-cryptographic hasher (the multiply-rotate scheme of rustc's FxHash) for the
//! harness' own sets of model states and action sequences: their keys come from the model,
//! never from outside, so SipHash's flooding resistance buys nothing, and hashing states is
//! most of the time a frontier takes to close.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FxHasher`]s: `HashSet<T, FxBuild>`.
pub type FxBuild = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: &T) -> u64 {
        FxBuild::default().hash_one(t)
    }

    #[test]
    fn equal_values_hash_equal_and_small_differences_spread() {
        assert_eq!(hash(&(1u8, "ab")), hash(&(1u8, "ab")));
        let hashes: std::collections::HashSet<u64> = (0u32..1000).map(|i| hash(&i)).collect();
        assert_eq!(hashes.len(), 1000);
        assert_ne!(hash(&[1u8, 0]), hash(&[1u8]));
        assert_ne!(hash(&"abcdefgh1"), hash(&"abcdefgh2"));
    }
}
