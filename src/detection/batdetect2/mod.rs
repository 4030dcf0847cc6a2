//! BatDetect2 (kind `batdetect2`): bat call detection with batdetect2 1.3.1's network,
//! exported to ONNX and run by tract.
//!
//! - `frontend`: the recording to the network's input, 3-second chunks of PCEN
//!   spectrogram computed exactly as batdetect2's Python computes them.

pub mod frontend;

#[cfg(test)]
mod tests;
