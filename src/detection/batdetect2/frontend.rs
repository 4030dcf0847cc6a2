//! STUB (replaced by h-bdfront at merge).
pub const SAMPLERATE: u32 = 256_000;
pub const CHUNK_SECONDS: u32 = 3;
pub const N_FFT: usize = 512;
pub const HOP: usize = 128;
pub const HEIGHT: usize = 128;
pub struct Chunk {
    pub start_s: f64,
    pub width: usize,
    pub spec: Vec<f32>,
}
pub fn chunks(_samples: &[f32], _samplerate: u32) -> Vec<Chunk> {
    Vec::new()
}
