//! The three graphs of the converted network (`batdetect2_export.py`: encoder, attention,
//! decoder), each cut out of the one ONNX file by its input and output names, with a plan
//! optimised per width it runs at.

use std::collections::HashMap;
use std::sync::Mutex;

use tract_onnx::prelude::*;

use super::frontend::HEIGHT;
use crate::detection::model::Plan;

/// An input of a part: its name in the file, channels, rows, and how many times narrower
/// than the spectrogram it is.
type Input = (&'static str, usize, usize, usize);

/// The encoder: a tile of spectrogram to the skip connections and the bottleneck.
const ENCODER: (&[Input], &[&str]) = (
    &[("enc_spec", 1, HEIGHT, 1)],
    &["enc_x2", "enc_x3", "enc_bottleneck"],
);
/// The self-attention, over a whole chunk's bottleneck.
const ATTENTION: (&[Input], &[&str]) = (&[("att_bottleneck", 256, 1, 8)], &["att_out"]);
/// The decoder: a tile of spectrogram, attention and skip connections to the size map and
/// the class logits.
const DECODER: (&[Input], &[&str]) = (
    &[
        ("dec_spec", 1, HEIGHT, 1),
        ("dec_attended", 256, 1, 8),
        ("dec_x2", 64, 32, 4),
        ("dec_x3", 256, 16, 8),
    ],
    &["pred_size", "pred_class_un_norm"],
);

/// Plans kept per part: the widths it ran on last (a deployment's recordings all have
/// one length: the tile width, and the last chunk's).
const PLANS_KEPT: usize = 2;

/// One part: its graph with symbolic widths, and plans for the last widths it ran at.
#[derive(Debug)]
pub struct Part {
    graph: TypedModel,
    /// Each input's width symbol and how many times narrower than the part's width it is.
    widths: Vec<(Symbol, usize)>,
    plans: Mutex<Vec<(usize, Plan)>>,
}

/// Cuts the file's graph into encoder, attention and decoder; the reason when it is not
/// what `batdetect2_export.py` writes.
pub fn cut(model: &InferenceModel) -> Result<[Part; 3], String> {
    Ok([
        Part::cut(model, ENCODER)?,
        Part::cut(model, ATTENTION)?,
        Part::cut(model, DECODER)?,
    ])
}

impl Part {
    fn cut(model: &InferenceModel, (inputs, outputs): (&[Input], &[&str])) -> Result<Part, String> {
        let not_ours = || {
            format!(
                "it is not BatDetect2's network as acoupi runs it (inputs {}): convert Net2DFast_UK_same.pth.tar with scripts/detection-reference/batdetect2_export.py (make models)",
                inputs.iter().map(|i| i.0).collect::<Vec<_>>().join(", ")
            )
        };
        let names = inputs.iter().map(|i| i.0);
        let mut part = model
            .clone()
            .with_input_names(names)
            .and_then(|m| m.with_outputs_by_name(outputs.iter()))
            .map_err(|_| not_ours())?;
        // The file declares its outputs' widths with symbols of their own; tract works
        // them out from the inputs'.
        for i in 0..outputs.len() {
            part.set_output_fact(i, InferenceFact::default())
                .map_err(|e| format!("{e:#}"))?;
        }
        let graph = part
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(|e| format!("{e:#}"))?;
        let mut widths = Vec::new();
        for (i, &(_, channels, rows, divisor)) in inputs.iter().enumerate() {
            let fact = graph.input_fact(i).map_err(|_| not_ours())?;
            let dims = fact.shape.dims();
            if dims.len() != 4 || dims[..3] != [1.to_dim(), channels.to_dim(), rows.to_dim()] {
                return Err(not_ours());
            }
            match &dims[3] {
                TDim::Sym(s) => widths.push((s.clone(), divisor)),
                _ => return Err(not_ours()),
            }
        }
        Ok(Part {
            graph,
            widths,
            plans: Default::default(),
        })
    }

    /// The plan for a spectrogram `width` columns wide: tract resolves the graph's
    /// upsampling sizes only for known widths, so each width gets its own optimised copy.
    pub fn plan_for(&self, width: usize) -> TractResult<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, plan)) = plans.iter().find(|(w, _)| *w == width) {
            return Ok(plan.clone());
        }
        let subs: HashMap<Symbol, TDim> = self
            .widths
            .iter()
            .map(|(symbol, divisor)| (symbol.clone(), (width / divisor).to_dim()))
            .collect();
        let plan = self
            .graph
            .set_symbols(&subs)?
            .into_optimized()?
            .into_runnable()?;
        if plans.len() == PLANS_KEPT {
            plans.remove(0);
        }
        plans.push((width, plan.clone()));
        Ok(plan)
    }

    /// The channels of output `i` (0 when the graph leaves them symbolic).
    pub fn output_channels(&self, i: usize) -> usize {
        self.graph
            .output_fact(i)
            .ok()
            .and_then(|fact| fact.shape.dims().get(1)?.as_i64())
            .and_then(|channels| usize::try_from(channels).ok())
            .unwrap_or(0)
    }

    /// Runs the part on inputs for a spectrogram `width` columns wide.
    pub fn run(&self, width: usize, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.plan_for(width)?.run(inputs)
    }
}
