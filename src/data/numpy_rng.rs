//! numpy's legacy `RandomState`: MT19937 seeded with `init_genrand`, and `shuffle` as numpy
//! does it. Keras shuffles the file list with exactly this before it splits off validation,
//! so the same seed must give the same permutation here.

const N: usize = 624;
const M: usize = 397;

pub struct RandomState {
    state: [u32; N],
    next: usize,
}

impl RandomState {
    /// `numpy.random.RandomState(seed)` for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState { state, next: N }
    }

    fn regenerate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.next = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.next >= N {
            self.regenerate();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `random_sample`: a uniform float in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        let high = (self.next_u32() >> 5) as f64;
        let low = (self.next_u32() >> 6) as f64;
        (high * 67_108_864.0 + low) / 9_007_199_254_740_992.0
    }

    /// numpy's `random_interval`: a uniform integer in `0..=max` by masked rejection.
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `RandomState.shuffle`: Fisher–Yates from the last element down.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values printed by numpy 2.4 (`RandomState(s).randint(0, 2**32)` and `.shuffle`).
    #[test]
    fn raw_outputs_match_numpy() {
        let mut r = RandomState::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        let mut r = RandomState::new(123);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(
            got,
            [2991312382, 3062119789, 1228959102, 1840268610, 974319580]
        );
    }

    #[test]
    fn uniform_matches_numpy_random_sample() {
        let mut r = RandomState::new(123);
        let got: Vec<f64> = (0..3).map(|_| r.uniform()).collect();
        assert_eq!(
            got,
            [0.6964691855978616, 0.28613933495037946, 0.2268514535642031]
        );
    }

    fn shuffled(seed: u32, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        RandomState::new(seed).shuffle(&mut v);
        v
    }

    #[test]
    fn shuffle_matches_numpy() {
        assert_eq!(shuffled(0, 10), [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
        assert_eq!(
            shuffled(123, 20),
            [14, 5, 4, 17, 8, 7, 19, 12, 0, 15, 16, 9, 11, 10, 3, 1, 6, 18, 2, 13]
        );
        assert_eq!(shuffled(u32::MAX, 7), [1, 5, 0, 6, 4, 2, 3]);
    }

    #[test]
    fn shuffle_of_tiny_slices_is_harmless() {
        assert_eq!(shuffled(1, 0), Vec::<usize>::new());
        assert_eq!(shuffled(1, 1), [0]);
    }
}
