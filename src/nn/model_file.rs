//! Model files: the weights as safetensors (named `layer/kernel`, `layer/bias`), the architecture
//! and class names as JSON in its metadata, written atomically.

use super::model::{ModelConfig, Sequential};
use crate::fsutil::write_atomically;
use crate::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "petal-sequential";
const VERSION: &str = "1";

/// A model with the class names its outputs stand for.
pub struct SavedModel {
    pub model: Sequential,
    pub class_names: Vec<String>,
}

pub fn save(path: &Path, model: &Sequential, class_names: &[String]) -> Result<()> {
    let params = model.named_params();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = params
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                p.value.iter().flat_map(|v| v.to_le_bytes()).collect(),
                p.shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| file_error(path, e))?;
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("version".to_string(), VERSION.to_string());
    metadata.insert("config".to_string(), model.config().to_json());
    let names = serde_json::to_string(class_names).expect("strings serialise");
    metadata.insert("class_names".to_string(), names);
    let file =
        safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| file_error(path, e))?;
    write_atomically(path, &file)
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub fn load(path: &Path) -> Result<SavedModel> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => file_error(
            path,
            "no such model file: check the path (petal train writes model.safetensors)",
        ),
        _ => Error::io(path, e),
    })?;
    let not_ours = |why: String| file_error(path, format!("not a petal model file ({why})"));
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| not_ours(e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(not_ours(
            "a safetensors file without petal's model description".into(),
        ));
    }
    if metadata.get("version").map(String::as_str) != Some(VERSION) {
        return Err(file_error(
            path,
            format!(
                "model file version {} is not supported; this petal reads version {VERSION}: train the model again with this petal, or use the petal that wrote it",
                metadata.get("version").map_or("(none)", String::as_str)
            ),
        ));
    }
    let config = ModelConfig::from_json(metadata.get("config").map_or("", String::as_str))
        .map_err(|e| file_error(path, e))?;
    let class_names: Vec<String> =
        serde_json::from_str(metadata.get("class_names").map_or("", String::as_str))
            .map_err(|e| file_error(path, format!("bad class names: {e}")))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| not_ours(e.to_string()))?;
    // The weights a description asks for must be in the file: a 340-byte file cannot make
    // petal allocate gigabytes before it finds them missing.
    let stored: usize = tensors
        .tensors()
        .iter()
        .map(|(_, t)| t.data().len() / 4)
        .sum();
    let mut model = Sequential::with_param_budget(&config, 0, stored).map_err(|e| {
        file_error(
            path,
            format!("{e} (the file stores {stored} weights): the file is damaged or not petal's"),
        )
    })?;
    let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
    for (name, param) in names.iter().zip(model.params_mut()) {
        let tensor = tensors
            .tensor(name)
            .map_err(|_| file_error(path, format!("weights {name} are missing")))?;
        if tensor.dtype() != Dtype::F32 || tensor.shape() != param.shape.as_slice() {
            return Err(file_error(
                path,
                format!(
                    "weights {name} are {:?} {:?}, expected F32 {:?}",
                    tensor.dtype(),
                    tensor.shape(),
                    param.shape
                ),
            ));
        }
        for (v, chunk) in param.value.iter_mut().zip(tensor.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    match model.output_shape() {
        super::Shape::Vector(units) if units == class_names.len() => {
            Ok(SavedModel { model, class_names })
        }
        shape => Err(file_error(
            path,
            format!("{} class names for outputs {shape}", class_names.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::Mode;

    #[test]
    fn a_description_asking_for_weights_the_file_lacks_is_refused_before_allocating() {
        let config = r#"{"input_shape": [64, 64, 3], "layers": [{"type": "Flatten"},
            {"type": "Dense", "units": 40000}]}"#;
        let mut metadata = std::collections::HashMap::new();
        metadata.insert("format".to_string(), FORMAT.to_string());
        metadata.insert("version".to_string(), VERSION.to_string());
        metadata.insert("config".to_string(), config.to_string());
        metadata.insert("class_names".to_string(), "[]".to_string());
        let none: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
        let bytes = safetensors::serialize(none, Some(metadata)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&path).err().expect("a crafted file loads").to_string();
        assert!(
            err.contains("stores 0 weights") && err.contains("crafted"),
            "{err}"
        );
    }

    fn small_model() -> Sequential {
        let config = ModelConfig::from_json(
            r#"{"input_shape": [6, 6, 3], "layers": [
                {"type": "Rescaling", "scale": 0.00392156862745098},
                {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "MaxPooling2D"}, {"type": "Flatten"}, {"type": "Dense", "units": 3}]}"#,
        )
        .unwrap();
        Sequential::new(&config, 9).unwrap()
    }

    #[test]
    fn round_trip_gives_bit_identical_predictions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut model = small_model();
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        save(&path, &model, &classes).unwrap();
        let mut loaded = load(&path).unwrap();
        assert_eq!(loaded.class_names, classes);
        let x: Vec<f32> = (0..2 * 108).map(|i| (i * 37 % 255) as f32).collect();
        let expected = model.forward(&x, 2, Mode::Infer).to_vec();
        assert_eq!(loaded.model.forward(&x, 2, Mode::Infer), &expected[..]);
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        save(&path, &small_model(), &["a", "b", "c"].map(String::from)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for len in [0, 7, 8, 40, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..len]).unwrap();
            let err = load(&path)
                .err()
                .expect("truncated file must fail")
                .to_string();
            assert!(err.contains("m.safetensors"), "{len}: {err}");
        }
        std::fs::write(&path, b"PNG? no, just text").unwrap();
        assert!(load(&path)
            .err()
            .unwrap()
            .to_string()
            .contains("not a petal model"));
        let missing = load(&dir.path().join("gone.safetensors"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("no such model file"), "{missing}");
    }
}
