//! The seeded choice of what the chaos run does next: one step is a GC of
//! one network, a DEL of everything, or up to `parallel` operations on
//! distinct slots at once. Everything here is a function of the seed.

use super::net::Net;

/// xorshift64*: small, seedable, good enough to pick operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A seed from the clock, for runs that do not name one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// The kinds of operation on one container slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// ADD of a new container on a network.
    Add(Net),
    /// ADD of a new container by a runtime that dies 0–4 ms later, and the
    /// DEL of the same attachment its restarted self sends.
    AddRacingDel(Net),
    /// CHECK of the running container.
    Check,
    /// DEL of the running container.
    Del,
    /// DEL after the container's namespace is already gone.
    DelGone,
}

/// One step of the run.
#[derive(Debug, Clone)]
pub enum Step {
    /// GC of one network, the running containers of that network valid.
    Gc(Net),
    /// DEL of every running container, then GC with an empty valid list.
    DelAll,
    /// Operations on distinct slots, run at once; each with its own seed.
    Ops(Vec<(usize, Op, u64)>),
}

/// Picks the next step; `live(i)` tells whether slot `i` holds a container.
pub fn next_step(rng: &mut Rng, nets: &[Net], slots: usize, parallel: usize, live: impl Fn(usize) -> bool) -> Step {
    let roll = rng.below(100);
    if roll < 5 {
        return Step::Gc(nets[rng.below(nets.len() as u64) as usize]);
    }
    if roll < 7 {
        return Step::DelAll;
    }
    let n = 1 + rng.below(parallel as u64) as usize;
    let mut free: Vec<usize> = (0..slots).collect();
    let mut batch = Vec::new();
    for _ in 0..n.min(free.len()) {
        let i = free.swap_remove(rng.below(free.len() as u64) as usize);
        let op = if live(i) {
            match rng.below(10) {
                0..=4 => Op::Check,
                5..=7 => Op::Del,
                _ => Op::DelGone,
            }
        } else {
            let net = nets[rng.below(nets.len() as u64) as usize];
            if rng.chance(15) {
                Op::AddRacingDel(net)
            } else {
                Op::Add(net)
            }
        };
        batch.push((i, op, rng.next_u64()));
    }
    Step::Ops(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_steps() {
        let nets = [Net::Bridge, Net::Shared, Net::Macvlan, Net::Ptp];
        let steps = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|k| format!("{:?}", next_step(&mut rng, &nets, 6, 3, |i| (i + k) % 2 == 0))).collect::<Vec<_>>()
        };
        assert_eq!(steps(7), steps(7));
        assert_ne!(steps(7), steps(8));
    }
}
