//! Sample conversion from the device format to the stored WAV bit depth.
//!
//! Every sample is taken to a left-justified 32-bit value, then cut to the stored width
//! (truncation, no dither: the extra bits of a 24/32-bit device below 16 stored bits are
//! noise floor). When the device bytes already are the file bytes nothing is copied.

use super::format::SampleFormat;

/// Converts interleaved device samples into WAV sample bytes.
#[derive(Debug, Clone)]
pub struct Converter {
    from: SampleFormat,
    to_bits: u16,
    out: Vec<u8>,
}

impl Converter {
    /// A converter from `from` to `to_bits` (16, 24 or 32) stored bits.
    pub fn new(from: SampleFormat, to_bits: u16) -> Converter {
        Converter {
            from,
            to_bits,
            out: Vec::new(),
        }
    }

    /// True when device bytes are file bytes.
    fn passthrough(&self) -> bool {
        matches!(
            (self.from, self.to_bits),
            (SampleFormat::S16_LE, 16) | (SampleFormat::S24_3LE, 24) | (SampleFormat::S32_LE, 32)
        )
    }

    /// The file bytes for `input` (whole samples of the device format).
    pub fn convert<'a>(&'a mut self, input: &'a [u8]) -> &'a [u8] {
        if self.passthrough() {
            return input;
        }
        let in_bytes = self.from.bytes_per_sample();
        let out_bytes = usize::from(self.to_bits / 8);
        self.out.clear();
        self.out.reserve(input.len() / in_bytes * out_bytes);
        for s in input.chunks_exact(in_bytes) {
            let v = left_justified(s, self.from);
            let b = v.to_le_bytes();
            // Little endian: the most significant `out_bytes` are the last ones.
            self.out.extend_from_slice(&b[4 - out_bytes..]);
        }
        &self.out
    }
}

/// One sample as a left-justified i32 (full scale ±2^31).
fn left_justified(s: &[u8], f: SampleFormat) -> i32 {
    match f {
        SampleFormat::S16_LE => i32::from(i16::from_le_bytes([s[0], s[1]])) << 16,
        // S24_LE: 24 significant bits in the low three bytes; the top byte is ignored.
        SampleFormat::S24_LE => i32::from_le_bytes([0, s[0], s[1], s[2]]),
        SampleFormat::S24_3LE => i32::from_le_bytes([0, s[0], s[1], s[2]]),
        SampleFormat::S32_LE => i32::from_le_bytes([s[0], s[1], s[2], s[3]]),
    }
}

/// Largest absolute left-justified sample value in `input`.
pub fn peak(input: &[u8], f: SampleFormat) -> i64 {
    input
        .chunks_exact(f.bytes_per_sample())
        .map(|s| i64::from(left_justified(s, f)).abs())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(from: SampleFormat, input: &[u8], to_bits: u16, expected: &[u8]) {
        let mut c = Converter::new(from, to_bits);
        assert_eq!(c.convert(input), expected, "{from} -> {to_bits} bits");
    }

    #[test]
    fn conversions_keep_the_most_significant_bits() {
        use SampleFormat::*;
        // -2 as S16 → 24-bit: 0xFFFE00 (left-justified), → 32-bit 0xFFFE0000.
        check(S16_LE, &[0xFE, 0xFF], 24, &[0x00, 0xFE, 0xFF]);
        check(S16_LE, &[0xFE, 0xFF], 32, &[0x00, 0x00, 0xFE, 0xFF]);
        // S24_LE with garbage in the padding byte.
        check(S24_LE, &[0x01, 0x02, 0x83, 0x55], 24, &[0x01, 0x02, 0x83]);
        check(S24_LE, &[0x01, 0x02, 0x83, 0x55], 16, &[0x02, 0x83]);
        check(S32_LE, &[1, 2, 3, 4], 16, &[3, 4]);
        check(S24_3LE, &[1, 2, 3], 32, &[0, 1, 2, 3]);
        check(S16_LE, &[7, 8], 16, &[7, 8]);
    }

    #[test]
    fn peak_is_full_scale_relative() {
        assert_eq!(peak(&i16::MIN.to_le_bytes(), SampleFormat::S16_LE), 1 << 31);
        assert_eq!(peak(&[], SampleFormat::S16_LE), 0);
    }
}
