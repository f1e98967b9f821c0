//! `petal data …`: the tutorial's "explore the data" and "load data" steps.

use super::dataset_args::DatasetArgs;
use super::progress;
use super::train::choose_model;
use clap::Subcommand;
use petal::data::fetch::{fetch, petal_home, Fetch};
use petal::data::inspect::{inspect, Inspection};
use petal::data::{CacheMode, Dataset, DirectoryIndex, Subset};
use petal::viz::{augmentation_previews, first_images, image_grid, save_png, Tile};
use petal::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Classes, counts per class, image sizes and formats; with --validation-split, the split sizes.
    Inspect {
        #[command(flatten)]
        data: DatasetArgs,
        /// Also decode every image, to find truncated or corrupt files.
        #[arg(long)]
        verify: bool,
        /// Fail if any file cannot be used (implies --verify).
        #[arg(long)]
        strict: bool,
    },
    /// Print the files of a subset, one per line, relative to DIR, in the order Keras yields them.
    Split {
        #[command(flatten)]
        data: DatasetArgs,
        /// training or validation.
        #[arg(long)]
        subset: Subset,
    },
    /// The tutorial's 3×3 picture: the first images of the training set, titled with their class.
    Grid {
        #[command(flatten)]
        data: DatasetArgs,
        /// Subset to show (the split fraction defaults to the tutorial's 0.2).
        #[arg(long, default_value = "training")]
        subset: Subset,
        /// How many images.
        #[arg(long, default_value_t = 9)]
        count: usize,
        #[arg(long, default_value_t = 3)]
        columns: usize,
        /// PNG file to write.
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
    },
    /// Download a data set or file once into petal's cache ($PETAL_HOME, default ~/.cache/petal),
    /// like Keras's get_file, and print where it is. NAME: flower_photos, sunflower, or a URL.
    Fetch {
        what: String,
        /// Expected SHA-256 of the download (hex); a mismatch keeps nothing.
        #[arg(long)]
        sha256: Option<String>,
        /// File name in the cache (default: the URL's last segment).
        #[arg(long)]
        name: Option<String>,
        /// Unpack the archive (.tgz, .tar.gz, .tar, .zip) into a folder of the same name.
        #[arg(long)]
        extract: bool,
        /// Stop a download of unknown size past this many bytes (default 8 GiB).
        #[arg(long, default_value_t = petal::data::fetch::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
        /// Give up when no data arrives for this many seconds.
        #[arg(long, default_value_t = petal::data::fetch::DEFAULT_READ_TIMEOUT.as_secs())]
        read_timeout: u64,
    },
    /// The tutorial's augmentation preview: the first training image through the model's
    /// augmentation layers, nine times.
    Augment {
        #[command(flatten)]
        data: DatasetArgs,
        /// Preset whose augmentation layers to show.
        #[arg(long, default_value = "tutorial-augmented", conflicts_with = "model")]
        preset: String,
        /// A model description file (JSON) that starts with augmentation layers.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 9)]
        count: usize,
        #[arg(long, default_value_t = 3)]
        columns: usize,
        /// PNG file to write.
        #[arg(long, default_value = "augmented.png")]
        out: PathBuf,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Inspect {
            data,
            verify,
            strict,
        } => run_inspect(&data, verify || strict, strict),
        DataCommand::Split { data, subset } => run_split(&data, subset),
        DataCommand::Grid {
            mut data,
            subset,
            count,
            columns,
            out,
        } => {
            data.validation_split.get_or_insert(0.2);
            run_grid(&data, subset, count, columns, &out)
        }
        DataCommand::Fetch {
            what,
            sha256,
            name,
            extract,
            max_bytes,
            read_timeout,
        } => {
            let limits = (
                max_bytes,
                std::time::Duration::from_secs(read_timeout.max(1)),
            );
            run_fetch(&what, sha256, name, extract, limits)
        }
        DataCommand::Augment {
            mut data,
            preset,
            model,
            count,
            columns,
            out,
        } => {
            data.validation_split.get_or_insert(0.2);
            let preview = Preview { count, columns };
            run_augment(&data, &preset, model.as_deref(), preview, &out)
        }
    }
}

fn run_inspect(args: &DatasetArgs, verify: bool, strict: bool) -> Result<()> {
    let builder = args.builder(CacheMode::None);
    let index = builder.index()?;
    println!(
        "Found {} files belonging to {} classes.",
        index.len(),
        index.class_names.len()
    );
    let report = inspect(&index, args.max_pixels);
    print_inspection(&index, &report);
    if args.validation_split.is_some() {
        let training = builder.samples(&index, Some(Subset::Training))?;
        let validation = builder.samples(&index, Some(Subset::Validation))?;
        println!("Using {} files for training.", training.len());
        println!("Using {} files for validation.", validation.len());
    }
    let mut unusable = report.unusable;
    if verify {
        let whole = DatasetArgs {
            validation_split: None,
            ..args.clone()
        };
        let all = whole.builder(CacheMode::None).shuffle(false).build()?;
        unusable = verify_all(&all);
        if unusable.is_empty() {
            println!("All {} images decode.", all.len());
        }
    }
    report_unusable(&unusable, index.len(), strict)
}

fn print_inspection(index: &DirectoryIndex, report: &Inspection) {
    let counts: Vec<String> = index
        .class_names
        .iter()
        .zip(&report.class_counts)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("  {}", counts.join(" · "));
    if let (Some((w0, w1)), Some((h0, h1))) = (report.width_range, report.height_range) {
        let formats = match report.formats.len() {
            1 => format!("all {}", report.formats.keys().next().unwrap_or(&"")),
            _ => report
                .formats
                .iter()
                .map(|(f, n)| format!("{f} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!("  sizes: {w0}–{w1} × {h0}–{h1} px, {formats}");
    }
}

fn verify_all(dataset: &Dataset) -> Vec<petal::ImageError> {
    let bar = progress::bar(dataset.len(), "images decoded");
    let errors = dataset.verify(&|| bar.inc(1));
    bar.finish_and_clear();
    errors
}

fn report_unusable(unusable: &[petal::ImageError], total: usize, strict: bool) -> Result<()> {
    if unusable.is_empty() {
        return Ok(());
    }
    if strict {
        return Err(Error::BadImages {
            count: unusable.len(),
            total,
            first: Box::new(unusable[0].clone()),
        });
    }
    eprintln!(
        "{} of {total} files cannot be used and will be skipped:",
        unusable.len()
    );
    for e in unusable {
        eprintln!("  {e}");
    }
    Ok(())
}

fn run_split(args: &DatasetArgs, subset: Subset) -> Result<()> {
    let builder = args.builder(CacheMode::None);
    let index = builder.index()?;
    let samples = builder.samples(&index, Some(subset))?;
    let mut out = String::with_capacity(samples.len() * 48);
    for file in &samples.files {
        out.push_str(&file.to_string_lossy());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn run_fetch(
    what: &str,
    sha256: Option<String>,
    name: Option<String>,
    extract: bool,
    (max_bytes, read_timeout): (u64, std::time::Duration),
) -> Result<()> {
    let known = Fetch::known(what);
    let is_known = known.is_some();
    let mut request = match known {
        Some(known) => known,
        None if what.contains("://") => Fetch::url(what)?,
        None => {
            return Err(Error::InvalidArgument(format!(
                "{what:?} is neither a known data set (flower_photos, sunflower) nor a URL"
            )))
        }
    };
    request.sha256 = sha256.or(request.sha256);
    request.name = name.unwrap_or(request.name);
    request.extract |= extract;
    // A known data set keeps its own, tighter limit.
    request.max_bytes = match is_known {
        true => request.max_bytes.min(max_bytes),
        false => max_bytes,
    };
    request.read_timeout = read_timeout;
    let path = fetch(&request, &petal_home(), &mut progress::DownloadBar::new())?;
    println!("{}", path.display());
    Ok(())
}

const MAX_PREVIEWS: usize = 100;

struct Preview {
    count: usize,
    columns: usize,
}

fn run_augment(
    args: &DatasetArgs,
    preset: &str,
    model: Option<&Path>,
    preview: Preview,
    out: &Path,
) -> Result<()> {
    // Every preview is one image in one batch: a bound keeps a typo from exhausting memory.
    if !(1..=MAX_PREVIEWS).contains(&preview.count) {
        return Err(Error::InvalidArgument(format!(
            "--count must be between 1 and {MAX_PREVIEWS}, got {}",
            preview.count
        )));
    }
    let dataset = args
        .builder(CacheMode::None)
        .build_subset(Subset::Training)?;
    let config = choose_model(Some(preset), model, &dataset)?;
    let Some((i, image)) = dataset
        .epoch_order(0)
        .into_iter()
        .find_map(|i| Some((i, dataset.image(i)?)))
    else {
        return Err(Error::InvalidArgument(format!(
            "no image of {} can be decoded",
            args.dir.display()
        )));
    };
    let seed = args.seed.unwrap_or(0);
    let class = &dataset.class_names()[dataset.label(i) as usize];
    let tiles: Vec<Tile> = augmentation_previews(&image, &config, preview.count, seed)?
        .into_iter()
        .enumerate()
        .map(|(k, image)| Tile {
            image,
            title: format!("{class} · draw {}", k + 1),
        })
        .collect();
    save_png(&image_grid(&tiles, preview.columns), out)?;
    println!(
        "Wrote {} ({} augmentations of {}).",
        out.display(),
        tiles.len(),
        dataset.file_path(i).display()
    );
    Ok(())
}

fn run_grid(
    args: &DatasetArgs,
    subset: Subset,
    count: usize,
    columns: usize,
    out: &Path,
) -> Result<()> {
    if count == 0 {
        return Err(Error::InvalidArgument("--count must be at least 1".into()));
    }
    let dataset = args.builder(CacheMode::None).build_subset(subset)?;
    let tiles = first_images(&dataset, count);
    if tiles.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "none of the {} images could be drawn: the warnings above say why",
            dataset.len()
        )));
    }
    save_png(&image_grid(&tiles, columns), out)?;
    println!("Wrote {} ({} images).", out.display(), tiles.len());
    if tiles.len() < count {
        eprintln!(
            "note: {count} images were asked for, but the {} subset has only {} usable",
            format!("{subset:?}").to_lowercase(),
            tiles.len()
        );
    }
    Ok(())
}
