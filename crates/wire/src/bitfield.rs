//! The set of pieces a peer has.
//!
//! On the wire a bitfield is one byte per piece, each 0 or 1 (the seed
//! project's layout, not packed bits). In memory it is a bool per piece plus a
//! running count, so "has everything" is O(1).

/// Which pieces a peer has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    bits: Vec<bool>,
    count: u32,
}

impl Bitfield {
    /// A bitfield of `len` pieces, none present.
    pub fn new(len: u32) -> Self {
        Self {
            bits: vec![false; len as usize],
            count: 0,
        }
    }

    /// A bitfield of `len` pieces, all present.
    pub fn full(len: u32) -> Self {
        Self {
            bits: vec![true; len as usize],
            count: len,
        }
    }

    /// Builds from one bool per piece.
    pub fn from_bools(bits: Vec<bool>) -> Self {
        let count = bits.iter().filter(|b| **b).count() as u32;
        Self { bits, count }
    }

    /// Parses the wire form: one byte per piece, each 0 or 1.
    /// Returns the first offending byte on failure.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, u8> {
        let mut bits = Vec::with_capacity(bytes.len());
        for &b in bytes {
            match b {
                0 => bits.push(false),
                1 => bits.push(true),
                other => return Err(other),
            }
        }
        Ok(Self::from_bools(bits))
    }

    /// The wire form: one byte (0 or 1) per piece.
    pub fn to_wire(&self) -> Vec<u8> {
        self.bits.iter().map(|&b| b as u8).collect()
    }

    /// Number of pieces this bitfield covers.
    pub fn len(&self) -> u32 {
        self.bits.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Number of pieces present.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether every piece is present.
    pub fn is_complete(&self) -> bool {
        self.count == self.len()
    }

    /// Whether piece `index` is present (false when out of range).
    pub fn has(&self, index: u32) -> bool {
        self.bits.get(index as usize).copied().unwrap_or(false)
    }

    /// Marks piece `index` present or absent. Returns whether it changed;
    /// out-of-range indices change nothing.
    pub fn set(&mut self, index: u32, present: bool) -> bool {
        match self.bits.get_mut(index as usize) {
            Some(bit) if *bit != present => {
                *bit = present;
                if present {
                    self.count += 1;
                } else {
                    self.count -= 1;
                }
                true
            }
            _ => false,
        }
    }

    /// Indices of present pieces.
    pub fn iter_present(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| i as u32)
    }

    /// Indices of missing pieces.
    pub fn iter_missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, b)| !**b)
            .map(|(i, _)| i as u32)
    }

    /// Whether `other` has any piece that `self` lacks.
    pub fn lacks_any_of(&self, other: &Bitfield) -> bool {
        self.bits
            .iter()
            .zip(&other.bits)
            .any(|(mine, theirs)| !*mine && *theirs)
    }

    pub fn as_bools(&self) -> &[bool] {
        &self.bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_count() {
        let mut bf = Bitfield::new(3);
        assert!(bf.set(1, true));
        assert!(!bf.set(1, true));
        assert!(!bf.set(7, true), "out of range must be ignored");
        assert_eq!(bf.count(), 1);
        assert!(bf.has(1) && !bf.has(0) && !bf.has(99));
        assert_eq!(bf.iter_missing().collect::<Vec<_>>(), vec![0, 2]);
        assert!(bf.set(1, false));
        assert_eq!(bf.count(), 0);
    }

    #[test]
    fn wire_form() {
        let bf = Bitfield::from_wire(&[1, 0, 1]).unwrap();
        assert_eq!(bf.count(), 2);
        assert_eq!(bf.to_wire(), vec![1, 0, 1]);
        assert_eq!(Bitfield::from_wire(&[1, 2]), Err(2));
        assert!(Bitfield::full(2).is_complete());
        assert!(Bitfield::new(2).lacks_any_of(&Bitfield::full(2)));
        assert!(!Bitfield::full(2).lacks_any_of(&Bitfield::new(2)));
    }
}
