//! A small deterministic mutator for the smoke runs: byte flips, inserts
//! of interesting tokens, truncation, duplication and splicing of seeds.
//! Not a fuzzer (no coverage feedback); it keeps the targets exercised on
//! every `cargo test` without libFuzzer.

/// Tokens that tend to reach error paths in JSON configs and env values.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\"0.4.0\"",
    b"\"1.1.0\"",
    b"\"0.1.0\"",
    b"\"9.9.9\"",
    b"\"ipam\"",
    b"\"ranges\"",
    b"\"subnet\"",
    b"\"10.0.0.0/8\"",
    b"\"::/0\"",
    b"\"fd00::/127\"",
    b"\"prevResult\"",
    b"\"runtimeConfig\"",
    b"\"portMappings\"",
    b"\"ips\"",
    b"\"routes\"",
    b"\"dst\"",
    b"\"gateway\"",
    b"\"interface\"",
    b"4294967296",
    b"\"type\"",
    b"\"../x\"",
    b"\\u0000",
    b"IgnoreUnknown=1",
    b"IP=",
    b";",
    b"=",
    b"\r\n",
    b"\x00",
    b"\xff",
];

/// A xorshift generator with a mutation step.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed | 1 }
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One to four mutations of a random seed.
    pub fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut data = seeds[self.below(seeds.len())].clone();
        for _ in 0..=self.below(4) {
            let at = if data.is_empty() { 0 } else { self.below(data.len() + 1) };
            match self.below(6) {
                0 if !data.is_empty() => {
                    let i = self.below(data.len());
                    data[i] ^= 1 << self.below(8);
                }
                1 => {
                    let t = TOKENS[self.below(TOKENS.len())];
                    data.splice(at..at, t.iter().copied());
                }
                2 => data.truncate(at),
                3 if !data.is_empty() => {
                    let end = (at + 1 + self.below(32)).min(data.len());
                    let start = at.min(end);
                    data.drain(start..end);
                }
                4 => {
                    let other = &seeds[self.below(seeds.len())];
                    let from = if other.is_empty() { 0 } else { self.below(other.len()) };
                    data.splice(at..at, other[from..].iter().copied());
                }
                _ => {
                    let end = (at + self.below(64)).min(data.len());
                    let piece: Vec<u8> = data[at.min(end)..end].to_vec();
                    data.splice(at..at, piece);
                }
            }
        }
        data
    }
}
