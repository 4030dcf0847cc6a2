//! A tiny two-class window model, built in code as an ONNX file: no weights to licence,
//! so tests, `make e2e` and a user trying the pipeline can run detection end to end.
//!
//! The model takes `[1, window]` samples and scores the window's mean energy `e`:
//! `loud = sigmoid(100 e - 5)`, `quiet = sigmoid(5 - 100 e)`. Silence scores loud 0.007
//! and quiet 0.993; a sine of amplitude 0.5 (e = 0.125) loud 0.999 and quiet 0.001.
//! Graph: `Mul(x, x)` → `ReduceMean(axis 1)` → `MatMul([1, 2] weights)` → `Add(bias)` →
//! `Sigmoid`, opset 13.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The model's classes, in output order (what its labels file holds).
pub const LABELS: [&str; 2] = ["loud", "quiet"];

/// The ONNX bytes of the tiny model for windows of `window` samples.
pub fn model_bytes(window: usize) -> Vec<u8> {
    let node =
        |op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>| NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: output.into(),
            attribute,
            ..Default::default()
        };
    let axes = AttributeProto {
        name: "axes".into(),
        r#type: AttributeType::Ints as i32,
        ints: vec![1],
        ..Default::default()
    };
    let keepdims = AttributeProto {
        name: "keepdims".into(),
        r#type: AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    };
    let constant = |name: &str, dims: Vec<i64>, values: Vec<f32>| TensorProto {
        name: name.into(),
        dims,
        data_type: DataType::Float as i32,
        float_data: values,
        ..Default::default()
    };
    let graph = GraphProto {
        name: "acoupi-tiny".into(),
        node: vec![
            node("Mul", &["x", "x"], "squared", vec![]),
            node("ReduceMean", &["squared"], "energy", vec![axes, keepdims]),
            node("MatMul", &["energy", "weights"], "weighted", vec![]),
            node("Add", &["weighted", "bias"], "logits", vec![]),
            node("Sigmoid", &["logits"], "scores", vec![]),
        ],
        initializer: vec![
            constant("weights", vec![1, 2], vec![100.0, -100.0]),
            constant("bias", vec![2], vec![-5.0, 5.0]),
        ],
        input: vec![value_info("x", &[1, window as i64])],
        output: vec![value_info("scores", &[1, LABELS.len() as i64])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 7,
        producer_name: "acoupi".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Writes the tiny model to `model` and its labels (one per line) to `labels`.
pub fn write(model: &Path, labels: &Path, window: usize) -> std::io::Result<()> {
    std::fs::write(model, model_bytes(window))?;
    std::fs::write(labels, LABELS.join("\n") + "\n")
}

/// An f32 tensor's name and fixed shape, as a graph input or output.
fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
