//! How a chunk's columns are cut into tiles for the network's wide layers.
//!
//! Net2DFast keeps 32 channels at the spectrogram's full 128 × width resolution: over a
//! whole 3-s chunk (3008 columns) each such tensor is 49 MB, and `acoupi detect` peaked
//! at 213 MB running the network on whole chunks. Its convolutions only look a few
//! columns to each side, so the encoder and the decoder run on tiles of [`CORE`] columns
//! with [`HALO`] columns of context on each side; only the self-attention between them
//! sees the whole chunk, at an eighth of the width (`batdetect2_export.py` cuts the
//! network there).
//!
//! A tile's outputs equal the whole chunk's in its core plus 4 columns (what non-maximum
//! suppression looks at) as long as the halo covers the network's reach: in PyTorch, 24
//! columns was the least that gave batdetect2's outputs to the bit, so 32 leaves a margin
//! (and keeps every edge on a multiple of 8 columns, where the encoder's three 2 × 2
//! poolings need them). The core trades memory for the halo's repeated work: 256 columns
//! (a 320-column tile) costs 6–10 % more CPU than 512 and keeps `acoupi detect` near
//! 100 MiB where 512 peaked at 115–166 MB (docs/benchmarks.md). `tests/integration/detect_batdetect2.rs` checks the end
//! result against batdetect2 itself.

use std::ops::Range;

/// Columns of context on each side of a tile's core.
pub const HALO: usize = 32;
/// Columns a tile is responsible for (the first and last tiles a halo more).
pub const CORE: usize = 256;
/// A tile's width: every tile of a chunk wider than this has exactly this width, so one
/// optimised plan serves them all.
pub const WIDTH: usize = CORE + 2 * HALO;

/// One tile of a chunk: the network runs on `start..end`, and its results are taken for
/// `core` (columns of the chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// First column of the chunk the tile covers.
    pub start: usize,
    /// One past the last column.
    pub end: usize,
    /// The columns whose results come from this tile; the cores of a chunk's tiles follow
    /// each other without gap or overlap.
    pub core: Range<usize>,
}

impl Tile {
    /// Columns the network runs on.
    pub fn width(&self) -> usize {
        self.end - self.start
    }

    /// The core in the tile's own columns.
    pub fn core_in_tile(&self) -> Range<usize> {
        self.core.start - self.start..self.core.end - self.start
    }
}

/// The tiles of a chunk `width` columns wide (a multiple of 32, as batdetect2 pads
/// chunks): the chunk itself when it is no wider than a tile; else tiles of [`WIDTH`]
/// columns, the last one moved back to end at the chunk's edge.
pub fn layout(width: usize) -> Vec<Tile> {
    if width <= WIDTH {
        return vec![Tile {
            start: 0,
            end: width,
            core: 0..width,
        }];
    }
    let mut tiles = Vec::new();
    let mut core_start = 0;
    while core_start < width {
        let start = core_start.saturating_sub(HALO);
        let (start, end, core_end) = if start + WIDTH >= width {
            (width - WIDTH, width, width)
        } else {
            (start, start + WIDTH, start + WIDTH - HALO)
        };
        tiles.push(Tile {
            start,
            end,
            core: core_start..core_end,
        });
        core_start = core_end;
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrow_chunk_is_one_tile() {
        assert_eq!(
            layout(32),
            [Tile {
                start: 0,
                end: 32,
                core: 0..32
            }]
        );
        assert_eq!(layout(WIDTH).len(), 1);
    }

    #[test]
    fn a_3_s_chunk_is_cut_as_the_pytorch_check_cut_it() {
        // The layout the halo was measured with (batdetect2 in PyTorch, outputs equal to
        // the bit): cores 0..288, then 256 each, the last tile ending at the edge.
        let tiles = layout(3008);
        let cores: Vec<_> = std::iter::once(0..288)
            .chain((0..10).map(|i| 288 + 256 * i..544 + 256 * i))
            .chain(std::iter::once(2848..3008))
            .collect();
        assert_eq!(
            tiles.iter().map(|t| t.core.clone()).collect::<Vec<_>>(),
            cores
        );
        assert_eq!((tiles[1].start, tiles[1].end), (256, 576));
        assert_eq!((tiles[11].start, tiles[11].end), (2688, 3008));
    }

    #[test]
    fn every_wide_chunk_is_covered_once_with_a_halo_wherever_a_tile_has_a_neighbour() {
        for width in (WIDTH + 32..=20_000).step_by(32) {
            let tiles = layout(width);
            let mut next = 0;
            for t in &tiles {
                assert_eq!(t.core.start, next, "width {width}: {t:?}");
                assert_eq!(t.width(), WIDTH, "width {width}: {t:?}");
                assert!(t.core.start == 0 || t.core.start >= t.start + HALO, "{t:?}");
                assert!(t.core.end == width || t.core.end + HALO <= t.end, "{t:?}");
                // The encoder pools three times: every edge on a multiple of 8 columns.
                for edge in [t.start, t.end, t.core.start, t.core.end] {
                    assert_eq!(edge % 8, 0, "width {width}: {t:?}");
                }
                next = t.core.end;
            }
            assert_eq!(next, width);
        }
    }
}
