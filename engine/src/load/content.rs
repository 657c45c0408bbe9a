//! Object bodies generated from (run seed, key), so a GET can be verified without keeping data.
//!
//! Byte `o` of an object is byte `o % 8` of the little-endian word `splitmix64(seed, o / 8)`.
//! SplitMix64 is counter-based: any word is computed directly from its index, so a range GET
//! starting at an arbitrary offset is verified as cheaply as a whole-object GET, and PUT bodies
//! are produced chunk by chunk while streaming — never buffered whole. Different keys get
//! different seeds (xxh3 of the key under the run seed), so no two objects share a body.
//!
//! Generation and verification run at several GB/s per core (`cargo bench -p chopsticks --bench content`).

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The content identity of one object: every byte follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ContentSeed(pub u64);

impl ContentSeed {
    /// The seed of the object stored under `key` in a run seeded with `run_seed`.
    pub fn for_key(run_seed: u64, key: &str) -> Self {
        ContentSeed(xxhash_rust::xxh3::xxh3_64_with_seed(
            key.as_bytes(),
            run_seed,
        ))
    }
}

/// Size of the chunks a streamed PUT body is produced in.
const CHUNK: usize = 256 * 1024;

#[inline(always)]
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the object's bytes `[offset, offset + buf.len())` into `buf`.
pub fn fill(seed: ContentSeed, offset: u64, buf: &mut [u8]) {
    let mut pos = 0usize;
    let mut off = offset;
    // Leading partial word.
    let head = (off % 8) as usize;
    if head != 0 {
        let w = word(seed.0, off / 8).to_le_bytes();
        let n = (8 - head).min(buf.len());
        buf[..n].copy_from_slice(&w[head..head + n]);
        pos += n;
        off += n as u64;
    }
    let mut index = off / 8;
    let whole = (buf.len() - pos) / 8;
    for chunk in buf[pos..pos + whole * 8].chunks_exact_mut(8) {
        chunk.copy_from_slice(&word(seed.0, index).to_le_bytes());
        index += 1;
    }
    pos += whole * 8;
    // Trailing partial word.
    if pos < buf.len() {
        let w = word(seed.0, index).to_le_bytes();
        let n = buf.len() - pos;
        buf[pos..].copy_from_slice(&w[..n]);
    }
}

/// Checks `data` against the object's bytes starting at `offset`. Returns the absolute offset
/// of the first differing byte.
pub fn check(seed: ContentSeed, offset: u64, data: &[u8]) -> Result<(), u64> {
    let mut pos = 0usize;
    let mut off = offset;
    let head = (off % 8) as usize;
    if head != 0 {
        let w = word(seed.0, off / 8).to_le_bytes();
        let n = (8 - head).min(data.len());
        if data[..n] != w[head..head + n] {
            return Err(first_diff(&data[..n], &w[head..head + n], offset));
        }
        pos += n;
        off += n as u64;
    }
    let mut index = off / 8;
    let whole = (data.len() - pos) / 8;
    // Compare word-wise with an OR-accumulator per block so the loop stays branch-light.
    for (i, chunk) in data[pos..pos + whole * 8].chunks_exact(8).enumerate() {
        let got = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        if got != word(seed.0, index) {
            let at = pos + i * 8;
            let expected = word(seed.0, index).to_le_bytes();
            return Err(first_diff(chunk, &expected, offset + at as u64));
        }
        index += 1;
    }
    pos += whole * 8;
    if pos < data.len() {
        let w = word(seed.0, index).to_le_bytes();
        let n = data.len() - pos;
        if data[pos..] != w[..n] {
            return Err(first_diff(&data[pos..], &w[..n], offset + pos as u64));
        }
    }
    Ok(())
}

fn first_diff(a: &[u8], b: &[u8], base: u64) -> u64 {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
    base + i as u64
}

/// Why a downloaded body is not the object that was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("content differs from what was written at byte {0}")]
    Bytes(u64),
    #[error("expected {expected} bytes, received {received}")]
    Length { expected: u64, received: u64 },
}

/// Verifies a streamed download chunk by chunk, in order.
#[derive(Debug)]
pub struct Verifier {
    seed: ContentSeed,
    start: u64,
    received: u64,
    expected_len: u64,
    mismatch: Option<Mismatch>,
}

impl Verifier {
    /// Verifies `expected_len` bytes of the object starting at `start`.
    pub fn new(seed: ContentSeed, start: u64, expected_len: u64) -> Self {
        Verifier {
            seed,
            start,
            received: 0,
            expected_len,
            mismatch: None,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        if self.mismatch.is_none() {
            if let Err(at) = check(self.seed, self.start + self.received, chunk) {
                self.mismatch = Some(Mismatch::Bytes(at));
            }
        }
        self.received += chunk.len() as u64;
    }

    pub fn finish(self) -> Result<(), Mismatch> {
        if let Some(m) = self.mismatch {
            return Err(m);
        }
        if self.received != self.expected_len {
            return Err(Mismatch::Length {
                expected: self.expected_len,
                received: self.received,
            });
        }
        Ok(())
    }
}

/// A streamed request body producing an object's bytes `[offset, offset + len)` on demand.
#[derive(Debug, Clone)]
pub struct GeneratedBody {
    seed: ContentSeed,
    offset: u64,
    remaining: u64,
}

impl GeneratedBody {
    pub fn new(seed: ContentSeed, offset: u64, len: u64) -> Self {
        GeneratedBody {
            seed,
            offset,
            remaining: len,
        }
    }

    /// The next chunk, or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(n);
        fill(self.seed, self.offset, &mut buf);
        self.offset += n as u64;
        self.remaining -= n as u64;
        Some(buf.freeze())
    }
}

impl Body for GeneratedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().next_chunk().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(seed: ContentSeed, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        fill(seed, 0, &mut v);
        v
    }

    proptest! {
        #[test]
        fn any_range_matches_the_whole_object(seed in any::<u64>(), start in 0usize..200, len in 0usize..200) {
            let seed = ContentSeed(seed);
            let all = whole(seed, 400);
            let mut part = vec![0u8; len];
            fill(seed, start as u64, &mut part);
            prop_assert_eq!(&part[..], &all[start..start + len]);
            prop_assert!(check(seed, start as u64, &part).is_ok());
        }

        #[test]
        fn a_flipped_byte_is_found_where_it_is(seed in any::<u64>(), start in 0u64..64, len in 1usize..300, at in 0usize..300) {
            let seed = ContentSeed(seed);
            let at = at % len;
            let mut data = vec![0u8; len];
            fill(seed, start, &mut data);
            data[at] ^= 0x40;
            prop_assert_eq!(check(seed, start, &data), Err(start + at as u64));
        }

        #[test]
        fn streamed_body_equals_fill(seed in any::<u64>(), offset in 0u64..100, len in 0u64..600_000) {
            let seed = ContentSeed(seed);
            let mut body = GeneratedBody::new(seed, offset, len);
            let mut v = Verifier::new(seed, offset, len);
            let mut total = 0;
            while let Some(chunk) = body.next_chunk() {
                total += chunk.len() as u64;
                v.update(&chunk);
            }
            prop_assert_eq!(total, len);
            prop_assert!(v.finish().is_ok());
        }
    }

    #[test]
    fn keys_get_different_bodies() {
        let a = whole(ContentSeed::for_key(7, "run/u1/1"), 64);
        let b = whole(ContentSeed::for_key(7, "run/u1/2"), 64);
        let c = whole(ContentSeed::for_key(8, "run/u1/1"), 64);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn verifier_reports_short_and_long_bodies() {
        let seed = ContentSeed(1);
        let data = whole(seed, 100);
        let mut v = Verifier::new(seed, 0, 101);
        v.update(&data);
        assert_eq!(
            v.finish(),
            Err(Mismatch::Length {
                expected: 101,
                received: 100
            })
        );
    }
}
