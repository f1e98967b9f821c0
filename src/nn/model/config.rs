//! A model description as JSON: the input shape and the layers with Keras's arguments.

use crate::nn::layers::LayerConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// A model description: the input shape and the layers with Keras's arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Height, width, channels.
    pub input_shape: [usize; 3],
    pub layers: Vec<LayerConfig>,
}

impl ModelConfig {
    /// Reads a JSON description; errors name the layer and the argument at fault.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Model(format!("not valid JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| {
            Error::Model("expected an object with \"input_shape\" and \"layers\"".into())
        })?;
        if let Some(key) = object
            .keys()
            .find(|k| *k != "input_shape" && *k != "layers")
        {
            return Err(Error::Model(format!(
                "unknown key {key:?}: expected \"input_shape\" and \"layers\""
            )));
        }
        let input_shape = object
            .get("input_shape")
            .and_then(|v| serde_json::from_value::<[usize; 3]>(v.clone()).ok())
            .ok_or_else(|| {
                Error::Model("\"input_shape\" must be [height, width, channels]".into())
            })?;
        let layers = object
            .get("layers")
            .and_then(|v| v.as_array())
            .ok_or_else(|| Error::Model("\"layers\" must be a list of layers".into()))?
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let kind = layer.get("type").and_then(|t| t.as_str()).unwrap_or("?");
                let fault = |e: String| Error::Model(format!("layer {} ({kind}): {e}", i + 1));
                check_float32(layer, "").map_err(fault)?;
                serde_json::from_value(layer.clone()).map_err(|e| fault(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelConfig {
            input_shape,
            layers,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("model configs serialise")
    }
}

/// Refuses numbers that a 32-bit float cannot hold (`1e39` would become infinity, saved as
/// JSON `null`, and the model file could never be read again).
fn check_float32(value: &serde_json::Value, key: &str) -> std::result::Result<(), String> {
    match value {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(v) if v.is_finite() && v.abs() > f32::MAX as f64 => Err(format!(
                "argument `{key}` is {n}, beyond what a 32-bit float holds (±3.4e38)"
            )),
            _ => Ok(()),
        },
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| check_float32(v, key)),
        serde_json::Value::Object(fields) => {
            fields.iter().try_for_each(|(k, v)| check_float32(v, k))
        }
        _ => Ok(()),
    }
}
