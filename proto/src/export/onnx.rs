//! The ONNX graph of a dense model (opset 13, IR version 7):
//!
//! ```text
//! features float[rows, F]
//!   → Cast(double) → Sub(scaling.mean) → Div(scaling.std) → Cast(float)
//!   → Gemm(dense.0.weight, dense.0.bias) → Relu → … → Gemm(last) = logits
//!   → Softmax = probabilities
//! ```
//!
//! The scaling runs in `f64` and rounds to `f32`, as a node standardizes its
//! rows, so the first layer sees the same inputs in both.

use prost::Message;

use super::onnx_schema::{
    ATTRIBUTE_INT, AttributeProto, DOUBLE, Dimension, FLOAT, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto,
    TypeProto, ValueInfoProto,
};
use super::{DenseModel, metadata};
use crate::model::encode_f32;

/// ONNX's IR version the file follows (ONNX 1.7).
const IR_VERSION: i64 = 7;
/// The default operator set's version the nodes follow.
const OPSET: i64 = 13;

/// The model as an ONNX file.
pub(super) fn to_onnx(model: &DenseModel) -> Vec<u8> {
    let mut graph = GraphProto {
        name: "cohort_dense".into(),
        ..GraphProto::default()
    };
    let features = model.spec.num_features as i64;
    let classes = model.spec.num_classes as i64;
    graph.input.push(value_info("features", features));
    let mut x = standardize(&mut graph, model);
    let layers = model.layout.layers.len();
    for (i, (shape, weight, bias)) in model.layers().enumerate() {
        let (w, b) = (format!("dense.{i}.weight"), format!("dense.{i}.bias"));
        let dims = [shape.inputs as i64, shape.outputs as i64];
        graph.initializer.push(float_tensor(&w, &dims, weight));
        graph.initializer.push(float_tensor(&b, &dims[1..], bias));
        let z = if i + 1 == layers {
            "logits".to_owned()
        } else {
            format!("dense.{i}.out")
        };
        graph.node.push(node("Gemm", &[&x, &w, &b], &z, Vec::new()));
        x = z;
        if i + 1 < layers {
            let h = format!("dense.{i}.relu");
            graph.node.push(node("Relu", &[&x], &h, Vec::new()));
            x = h;
        }
    }
    graph
        .node
        .push(node("Softmax", &["logits"], "probabilities", Vec::new()));
    graph.output.push(value_info("logits", classes));
    graph.output.push(value_info("probabilities", classes));
    ModelProto {
        ir_version: IR_VERSION,
        producer_name: "cohort".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("Cohort federated model {}", model.model_version()),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: (metadata(model).into_iter())
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    }
    .encode_to_vec()
}

/// Adds the scaling nodes; returns the standardized features' name.
fn standardize(graph: &mut GraphProto, model: &DenseModel) -> String {
    let width = [model.spec.num_features as i64];
    let (mean, std) = (&model.scaling.mean, &model.scaling.std);
    graph
        .initializer
        .push(double_tensor("scaling.mean", &width, mean));
    graph
        .initializer
        .push(double_tensor("scaling.std", &width, std));
    let steps: [(&str, &[&str], &str, Vec<AttributeProto>); 4] = [
        (
            "Cast",
            &["features"],
            "features.f64",
            vec![int("to", DOUBLE)],
        ),
        (
            "Sub",
            &["features.f64", "scaling.mean"],
            "centred",
            Vec::new(),
        ),
        (
            "Div",
            &["centred", "scaling.std"],
            "standardized.f64",
            Vec::new(),
        ),
        (
            "Cast",
            &["standardized.f64"],
            "standardized",
            vec![int("to", FLOAT)],
        ),
    ];
    for (op, inputs, output, attributes) in steps {
        graph.node.push(node(op, inputs, output, attributes));
    }
    "standardized".into()
}

fn node(op_type: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|i| (*i).to_owned()).collect(),
        output: vec![output.to_owned()],
        name: output.to_owned(),
        op_type: op_type.to_owned(),
        attribute,
    }
}

fn int(name: &str, value: i32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: i64::from(value),
        r#type: ATTRIBUTE_INT,
    }
}

/// A `float[rows, width]` graph input or output; `rows` is free.
fn value_info(name: &str, width: i64) -> ValueInfoProto {
    let dim = vec![
        Dimension {
            dim_value: None,
            dim_param: Some("rows".into()),
        },
        Dimension {
            dim_value: Some(width),
            dim_param: None,
        },
    ];
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: FLOAT,
        name: name.into(),
        raw_data: encode_f32(values),
    }
}

fn double_tensor(name: &str, dims: &[i64], values: &[f64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: DOUBLE,
        name: name.into(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportFormat;
    use crate::model::SavedSpec;

    #[test]
    fn the_graph_standardizes_then_runs_each_layer() {
        let spec = SavedSpec {
            kind: "mlp".into(),
            num_features: 2,
            num_classes: 3,
            hidden_layers: vec![4, 5],
        };
        let count = 2 * 4 + 4 + 4 * 5 + 5 + 5 * 3 + 3;
        let scaling = crate::scaling::FeatureScaling {
            mean: vec![0.0, 1.0],
            std: vec![2.0, 3.0],
        };
        let model = DenseModel::new(spec, scaling, vec![0.5; count]).unwrap();
        let bytes = model.export(ExportFormat::Onnx).unwrap();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = decoded.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Cast", "Sub", "Div", "Cast", "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"
            ]
        );
        assert_eq!(graph.initializer.len(), 2 + 2 * 3);
        let version = decoded
            .metadata_props
            .iter()
            .find(|p| p.key == "cohort.model_version");
        assert_eq!(version.unwrap().value, model.model_version());
    }
}
