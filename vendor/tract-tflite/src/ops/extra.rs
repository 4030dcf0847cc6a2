//! Spike (acoupi issue 13): the TFLite builtins BirdNET V2.4 needs and tract-tflite 0.23.9 lacks.
use tract_core::internal::*;
use tract_core::ops::array::{Gather, Slice, TypedConcat};
use tract_core::ops::cast::wire_cast;
use tract_core::ops::change_axes::wire_rank_broadcast;
use tract_core::ops::fft::Fft;

use crate::registry::{DeserOp, Registry};
use crate::tflite::{BuiltinOperator, TensorType};

pub fn register_all(reg: &mut Registry) {
    reg.reg_to_tract(BuiltinOperator::PACK, de_pack);
    reg.reg_to_tract(BuiltinOperator::SPLIT_V, de_split_v);
    reg.reg_to_tract(BuiltinOperator::FLOOR_DIV, de_floor_div);
    reg.reg_to_tract(BuiltinOperator::RANGE, de_range);
    reg.reg_to_tract(BuiltinOperator::GATHER, de_gather);
    reg.reg_to_tract(BuiltinOperator::POW, de_pow);
    reg.reg_to_tract(BuiltinOperator::REVERSE_V2, de_reverse_v2);
    reg.reg_to_tract(BuiltinOperator::RFFT2D, de_rfft2d);
    reg.reg_to_tract(BuiltinOperator::CAST, de_cast);
    reg.reg_to_tract(BuiltinOperator::DEQUANTIZE, de_dequantize);
}

fn konst_i64(f: &TypedFact, what: &str) -> TractResult<Vec<i64>> {
    let k = f.konst.as_ref().with_context(|| format!("dynamic {what} is not supported"))?;
    let k = k.cast_to::<i64>()?;
    Ok(k.try_as_plain_ram()?.as_slice::<i64>()?.to_vec())
}

fn de_pack(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let options = builtin!(op, builtin_options_as_pack_options);
    let facts = op.facts()?;
    let rank = facts[0].rank() as i32 + 1;
    let axis = if options.axis() < 0 { options.axis() + rank } else { options.axis() } as usize;
    let dt = DatumType::super_type_for(facts.iter().map(|f| f.datum_type)).context("no super type")?;
    let inputs = wire_cast(format!("{}.cast", op.prefix), op.ctx.target, op.inputs, dt)?;
    let mut wires = tvec!();
    for (ix, w) in inputs.iter().enumerate() {
        wires.push(
            op.ctx.target.wire_node(format!("{}.add_axis.{ix}", op.prefix), AxisOp::Add(axis), &[*w])?[0],
        );
    }
    op.ctx.target.wire_node(op.prefix, TypedConcat::new(axis), &wires)
}

fn de_split_v(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let (input, sizes, axis) = args_3!(op.facts()?);
    let sizes = konst_i64(&sizes, "SPLIT_V size_splits")?;
    let axis = konst_i64(&axis, "SPLIT_V axis")?[0];
    let axis = if axis < 0 { axis + input.rank() as i64 } else { axis } as usize;
    let total = input.shape[axis].to_i64()?;
    let known: i64 = sizes.iter().filter(|s| **s >= 0).sum();
    let mut start = 0i64;
    let mut outs = tvec!();
    for (ix, s) in sizes.iter().enumerate() {
        let len = if *s < 0 { total - known } else { *s };
        let w = op.ctx.target.wire_node(
            format!("{}.{ix}", op.prefix),
            Slice::new(axis, start as usize, (start + len) as usize),
            &[op.inputs[0]],
        )?;
        outs.push(w[0]);
        start += len;
    }
    Ok(outs)
}

fn de_floor_div(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let (a, b) = args_2!(op.facts()?);
    if a.datum_type.is_float() {
        let w = wire_cast(format!("{}.cast", op.prefix), op.ctx.target, op.inputs, a.datum_type)?;
        let w = wire_rank_broadcast(op.prefix, op.ctx.target, &w)?;
        let w = op.ctx.target.wire_node(format!("{}.div", op.prefix), tract_core::ops::math::div(), &w)?;
        return op.ctx.target.wire_node(op.prefix, tract_core::ops::math::floor(), &w);
    }
    let (Some(ka), Some(kb)) = (a.konst.clone(), b.konst.clone()) else {
        bail!("FLOOR_DIV on non-constant integers is not supported")
    };
    let ka = ka.cast_to::<i64>()?.into_owned();
    let kb = kb.cast_to::<i64>()?.into_owned();
    let av = ka.to_plain_array_view::<i64>()?;
    let bv = kb.to_plain_array_view::<i64>()?;
    let shape: Vec<usize> = if av.len() >= bv.len() { av.shape().to_vec() } else { bv.shape().to_vec() };
    let a2 = av.broadcast(shape.clone()).context("FLOOR_DIV broadcast")?;
    let b2 = bv.broadcast(shape).context("FLOOR_DIV broadcast")?;
    let r = tract_ndarray::Zip::from(&a2).and(&b2).map_collect(|x, y| x.div_euclid(*y) - if (x.rem_euclid(*y) != 0) && (*y < 0) { 1 } else { 0 });
    let t = r.into_tensor().cast_to_dt(a.datum_type)?.into_owned();
    Ok(tvec!(op.ctx.target.add_const(op.prefix, t)?))
}

fn de_range(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let (start, limit, delta) = args_3!(op.facts()?);
    let dt = start.datum_type;
    ensure!(!dt.is_float(), "float RANGE is not supported in this spike");
    let (s, l, d) = (konst_i64(&start, "RANGE")?[0], konst_i64(&limit, "RANGE")?[0], konst_i64(&delta, "RANGE")?[0]);
    let mut v = vec![];
    let mut x = s;
    while (d > 0 && x < l) || (d < 0 && x > l) {
        v.push(x);
        x += d;
    }
    let t = tensor1(&v).cast_to_dt(dt)?.into_owned();
    Ok(tvec!(op.ctx.target.add_const(op.prefix, t)?))
}

fn de_gather(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let options = builtin!(op, builtin_options_as_gather_options);
    ensure!(options.batch_dims() == 0, "GATHER with batch_dims is not supported");
    let rank = op.facts()?[0].rank() as i32;
    let axis = if options.axis() < 0 { options.axis() + rank } else { options.axis() } as usize;
    let idx = wire_cast(format!("{}.idx", op.prefix), op.ctx.target, &op.inputs[1..2], i64::datum_type())?;
    op.ctx.target.wire_node(op.prefix, Gather::new(axis), &[op.inputs[0], idx[0]])
}

fn de_pow(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let facts = op.facts()?;
    let dt = DatumType::super_type_for(facts.iter().map(|f| f.datum_type)).context("no super type")?;
    let w = wire_cast(format!("{}.cast", op.prefix), op.ctx.target, op.inputs, dt)?;
    let w = wire_rank_broadcast(op.prefix, op.ctx.target, &w)?;
    op.ctx.target.wire_node(op.prefix, tract_core::ops::math::pow(), &w)
}

fn de_reverse_v2(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let (input, axes) = args_2!(op.facts()?);
    let axes = konst_i64(&axes, "REVERSE_V2 axis")?;
    let mut wire = op.inputs[0];
    for (ix, a) in axes.iter().enumerate() {
        let a = if *a < 0 { a + input.rank() as i64 } else { *a } as usize;
        let n = input.shape[a].to_usize()?;
        let idx = tensor1(&(0..n as i64).rev().collect::<Vec<i64>>());
        let k = op.ctx.target.add_const(format!("{}.rev_idx.{ix}", op.prefix), idx)?;
        wire = op.ctx.target.wire_node(format!("{}.rev.{ix}", op.prefix), Gather::new(a), &[wire, k])?[0];
    }
    Ok(tvec!(wire))
}

/// Real input [..., 1, N] -> [..., 1, N/2+1, 2] (tract's complex convention: trailing [re, im] axis).
fn de_rfft2d(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let (input, len) = args_2!(op.facts()?);
    let len = konst_i64(&len, "RFFT2D fft_length")?;
    let r = input.rank();
    ensure!(input.shape[r - 2] == 1.to_dim() && len[0] == 1, "RFFT2D: only a unit inner-2D dim is supported");
    let n = len[1] as usize;
    ensure!(input.shape[r - 1] == n.to_dim(), "RFFT2D with implicit padding/cropping is not supported");
    let p = op.prefix;
    let re = op.ctx.target.wire_node(format!("{p}.re"), AxisOp::Add(r), &[op.inputs[0]])?[0];
    let zero = op.ctx.target.add_const(format!("{p}.zero"), Tensor::zero::<f32>(&vec![1; r + 1])?)?;
    let im = op.ctx.target.wire_node(format!("{p}.im"), tract_core::ops::math::mul(), &[re, zero])?[0];
    let c = op.ctx.target.wire_node(format!("{p}.complex"), TypedConcat::new(r), &[re, im])?;
    let f = op.ctx.target.wire_node(format!("{p}.fft"), Fft { axis: r - 1, inverse: false }, &c)?;
    op.ctx.target.wire_node(p, Slice::new(r - 1, 0, n / 2 + 1), &f)
}

fn de_cast(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let tensors = op.ctx.subgraph.tensors().unwrap();
    let in_type = tensors.get(op.flat.inputs().unwrap().get(0) as usize).type_();
    let out_type = tensors.get(op.flat.outputs().unwrap().get(0) as usize).type_();
    if in_type == TensorType::COMPLEX64 {
        ensure!(out_type == TensorType::FLOAT32, "CAST from complex only to float32");
        // TFLite's CAST complex64 -> float32 keeps the real part (std::real).
        let r = op.facts()?[0].rank();
        let w = op.ctx.target.wire_node(format!("{}.re", op.prefix), Slice::new(r - 1, 0, 1), &[op.inputs[0]])?;
        return op.ctx.target.wire_node(op.prefix, AxisOp::Rm(r - 1), &w);
    }
    let out_dt: DatumType = out_type.try_into()?;
    wire_cast(op.prefix, op.ctx.target, op.inputs, out_dt)
}

/// DEQUANTIZE of float16 weights to float32 (BirdNET V2.4's meta-data model stores its
/// weights as fp16, each behind a DEQUANTIZE): a plain cast, which tract folds for a
/// constant input. Integer inputs (scale and zero point) are refused, not mis-read.
fn de_dequantize(op: &mut DeserOp) -> TractResult<TVec<OutletId>> {
    let tensors = op.ctx.subgraph.tensors().unwrap();
    let in_type = tensors.get(op.flat.inputs().unwrap().get(0) as usize).type_();
    let out_type = tensors.get(op.flat.outputs().unwrap().get(0) as usize).type_();
    ensure!(
        in_type == TensorType::FLOAT16 && out_type == TensorType::FLOAT32,
        "DEQUANTIZE only from float16 to float32 (got {:?} to {:?})",
        in_type,
        out_type
    );
    wire_cast(op.prefix, op.ctx.target, op.inputs, DatumType::F32)
}
