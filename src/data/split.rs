//! Keras's training/validation split: shuffle the whole index with numpy's `RandomState(seed)`,
//! then the last `int(validation_split × n)` files are the validation set.

use super::index::DirectoryIndex;
use super::numpy_rng::RandomState;
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subset {
    Training,
    Validation,
}

impl std::str::FromStr for Subset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "training" => Ok(Subset::Training),
            "validation" => Ok(Subset::Validation),
            _ => Err(Error::InvalidArgument(format!(
                "subset must be \"training\" or \"validation\", not {s:?}"
            ))),
        }
    }
}

/// Files with their labels, in the order a split yields them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    pub files: Vec<PathBuf>,
    pub labels: Vec<i32>,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The index in Keras's post-shuffle order (or unshuffled when `seed` is `None`).
pub fn shuffled(index: &DirectoryIndex, seed: Option<u32>) -> Samples {
    let mut files = index.files.clone();
    let mut labels = index.labels.clone();
    if let Some(seed) = seed {
        RandomState::new(seed).shuffle(&mut files);
        RandomState::new(seed).shuffle(&mut labels);
    }
    Samples { files, labels }
}

/// How many files Keras puts in the validation set: `int(validation_split * n)`.
pub fn validation_count(n: usize, validation_split: f64) -> Result<usize> {
    if !(validation_split > 0.0 && validation_split < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "validation_split must be between 0 and 1 (exclusive), not {validation_split}"
        )));
    }
    let count = (validation_split * n as f64) as usize;
    if count == 0 || count == n {
        // Keras would silently yield an empty subset (or the whole set) here.
        return Err(Error::InvalidArgument(format!(
            "validation_split {validation_split} of {n} files leaves {} empty: use more files or another fraction",
            if count == 0 { "the validation set" } else { "the training set" }
        )));
    }
    Ok(count)
}

/// Splits shuffled samples into (training, validation) as Keras's
/// `get_training_or_validation_split` does.
pub fn split(samples: Samples, validation_split: f64) -> Result<(Samples, Samples)> {
    let n_val = validation_count(samples.len(), validation_split)?;
    let cut = samples.len() - n_val;
    let Samples {
        mut files,
        mut labels,
    } = samples;
    let val = Samples {
        files: files.split_off(cut),
        labels: labels.split_off(cut),
    };
    Ok((Samples { files, labels }, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize) -> Samples {
        Samples {
            files: (0..n)
                .map(|i| PathBuf::from(format!("c/{i}.jpg")))
                .collect(),
            labels: vec![0; n],
        }
    }

    #[test]
    fn validation_is_the_tail() {
        let (train, val) = split(samples(10), 0.25).unwrap();
        assert_eq!(train.len(), 8);
        assert_eq!(
            val.files,
            [PathBuf::from("c/8.jpg"), PathBuf::from("c/9.jpg")]
        );
    }

    #[test]
    fn count_truncates_like_python_int() {
        assert_eq!(validation_count(3670, 0.2).unwrap(), 734);
        assert_eq!(validation_count(3670, 0.35).unwrap(), 1284);
        assert_eq!(validation_count(10, 0.29).unwrap(), 2);
    }

    #[test]
    fn degenerate_splits_are_refused() {
        assert!(validation_count(10, 0.0).is_err());
        assert!(validation_count(10, 1.0).is_err());
        assert!(validation_count(10, f64::NAN).is_err());
        let err = validation_count(5, 0.1).unwrap_err().to_string();
        assert!(err.contains("validation set"), "{err}");
    }
}
