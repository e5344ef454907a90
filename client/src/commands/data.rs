//! `--data` and its flags: which format a node's local data is in, how to read
//! it, and how it is split (the same flags for `run` and `inference serve`, so
//! both see the same training split).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use cohort_client::data::{
    BadRowPolicy, CsvOptions, Dataset, LoadedData, load_csv, train_holdout_split,
};

use super::parse_label_column;

/// The node's local data and how it is split.
#[derive(Args)]
pub struct DataArgs {
    /// The local data: a CSV file (or .csv.gz) of numeric features and a label, a
    /// Parquet file, or an image folder (one sub-folder per class).
    #[arg(long)]
    pub data: PathBuf,
    /// The format of --data; `auto`: a folder is an image folder, a file
    /// ending in .parquet or .pq is Parquet, anything else CSV.
    #[arg(long, value_enum, default_value_t = DataFormat::Auto)]
    pub format: DataFormat,
    /// The label: for CSV its 0-based column, `last` or `none`; for Parquet the
    /// column's name or `none`.
    #[arg(long, default_value = "last")]
    pub label_column: String,
    /// Parquet: the feature columns, by name, in order (default: every column
    /// but the label).
    #[arg(long, value_delimiter = ',')]
    pub feature_columns: Option<Vec<String>>,
    /// CSV: lines at the top of the file that are not data (a header).
    #[arg(long, default_value_t = 0)]
    pub header_lines: usize,
    /// Image folder: every image's size, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_image_size)]
    pub image_size: Option<(u32, u32)>,
    /// Image folder: the channels an image becomes.
    #[arg(long, value_enum, default_value_t = ImageChannels::Gray)]
    pub channels: ImageChannels,
    /// Image folder: the classes in label order (default: the sorted sub-folder
    /// names; name them when this node lacks a class the federation has).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Fraction of rows held out for federated evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Seed of the train/holdout split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// What to do with rows (or image files) that fail to parse.
    #[arg(long, value_enum, default_value_t = BadRows::Reject)]
    pub bad_rows: BadRows,
}

/// The format of a node's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    /// From the path: folder → images, .parquet/.pq → Parquet, else CSV.
    Auto,
    Csv,
    Parquet,
    Images,
}

/// What an image becomes (see `cohort_client::data::Channels`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImageChannels {
    Gray,
    Rgb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BadRows {
    Skip,
    Reject,
}

impl From<BadRows> for BadRowPolicy {
    fn from(bad_rows: BadRows) -> Self {
        match bad_rows {
            BadRows::Skip => Self::Skip,
            BadRows::Reject => Self::Reject,
        }
    }
}

impl DataArgs {
    /// Loads the data and splits it into (train, holdout).
    pub fn load_split(&self) -> anyhow::Result<(Dataset, Dataset)> {
        let loaded = self
            .load()
            .with_context(|| format!("loading {}", self.data.display()))?;
        for bad in &loaded.skipped {
            tracing::warn!(at = %bad.at, reason = %bad.reason, "skipped malformed row");
        }
        let (train, holdout) = train_holdout_split(&loaded.dataset, self.holdout, self.split_seed)?;
        tracing::info!(
            rows = loaded.dataset.len(),
            skipped = loaded.skipped.len(),
            train = train.len(),
            holdout = holdout.len(),
            "local data loaded"
        );
        Ok((train, holdout))
    }

    fn load(&self) -> anyhow::Result<LoadedData> {
        let format = self.format.resolve(&self.data);
        self.refuse_flags_not_for(format)?;
        match format {
            DataFormat::Parquet => self.load_parquet(),
            DataFormat::Images => self.load_images(),
            DataFormat::Csv | DataFormat::Auto => {
                let options = CsvOptions {
                    label_column: parse_label_column(&self.label_column)
                        .map_err(|problem| anyhow::anyhow!("--label-column: {problem}"))?,
                    header_lines: self.header_lines,
                    bad_rows: self.bad_rows.into(),
                };
                Ok(load_csv(&self.data, &options)?)
            }
        }
    }

    /// A flag that the data's format does not read is refused, naming it,
    /// rather than silently ignored.
    fn refuse_flags_not_for(&self, format: DataFormat) -> anyhow::Result<()> {
        let (name, given) = match format {
            DataFormat::Parquet => ("Parquet", self.header_lines != 0 || self.image_flags()),
            DataFormat::Images => (
                "an image folder",
                self.header_lines != 0 || self.feature_columns.is_some(),
            ),
            DataFormat::Csv | DataFormat::Auto => {
                ("CSV", self.feature_columns.is_some() || self.image_flags())
            }
        };
        if given {
            bail!(
                "{} is {name}, which does not read {}",
                self.data.display(),
                self.flags_given().join(", ")
            );
        }
        Ok(())
    }

    fn image_flags(&self) -> bool {
        self.image_size.is_some() || self.classes.is_some()
    }

    /// The format-specific flags given, by name.
    fn flags_given(&self) -> Vec<&'static str> {
        [
            ("--header-lines", self.header_lines != 0),
            ("--feature-columns", self.feature_columns.is_some()),
            ("--image-size", self.image_size.is_some()),
            ("--classes", self.classes.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    #[cfg(feature = "parquet")]
    fn load_parquet(&self) -> anyhow::Result<LoadedData> {
        use cohort_client::data::{ParquetOptions, load_parquet};
        if self.label_column == "last" || self.label_column.parse::<usize>().is_ok() {
            bail!(
                "--label-column: a Parquet file's label is named by its column, e.g. \
                 --label-column outcome (or `none`), not {:?}",
                self.label_column
            );
        }
        let options = ParquetOptions {
            label: (self.label_column != "none").then(|| self.label_column.clone()),
            features: self.feature_columns.clone(),
            bad_rows: self.bad_rows.into(),
        };
        Ok(load_parquet(&self.data, &options)?)
    }

    #[cfg(not(feature = "parquet"))]
    fn load_parquet(&self) -> anyhow::Result<LoadedData> {
        bail!(
            "{} is Parquet, which this cohort-node was built without: build it with \
             `cargo build --release -p cohort-client --features parquet`",
            self.data.display()
        )
    }

    #[cfg(feature = "images")]
    fn load_images(&self) -> anyhow::Result<LoadedData> {
        use cohort_client::data::{Channels, ImageFolderOptions, load_image_folder};
        let Some((width, height)) = self.image_size else {
            bail!(
                "{} is an image folder: give --image-size WIDTHxHEIGHT",
                self.data.display()
            );
        };
        let options = ImageFolderOptions {
            width,
            height,
            channels: match self.channels {
                ImageChannels::Gray => Channels::Gray,
                ImageChannels::Rgb => Channels::Rgb,
            },
            classes: self.classes.clone(),
            bad_files: self.bad_rows.into(),
        };
        let folder = load_image_folder(&self.data, &options)?;
        tracing::info!(classes = ?folder.classes, "image classes in label order");
        Ok(folder.loaded)
    }

    #[cfg(not(feature = "images"))]
    fn load_images(&self) -> anyhow::Result<LoadedData> {
        bail!(
            "{} is an image folder, which this cohort-node was built without: build it with \
             `cargo build --release -p cohort-client --features images`",
            self.data.display()
        )
    }
}

impl DataFormat {
    /// The format `auto` stands for at `path`; the others as given.
    fn resolve(self, path: &Path) -> Self {
        if self != Self::Auto {
            return self;
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_dir() {
            Self::Images
        } else if matches!(extension.as_deref(), Some("parquet" | "pq")) {
            Self::Parquet
        } else {
            Self::Csv
        }
    }
}

/// `WIDTHxHEIGHT`, both positive.
fn parse_image_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    match parsed {
        Some((width, height)) if width > 0 && height > 0 => Ok((width, height)),
        _ => Err(format!("expected WIDTHxHEIGHT, e.g. 8x8, got {text:?}")),
    }
}
