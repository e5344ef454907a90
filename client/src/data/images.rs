//! Loading a node's data from an image folder: one sub-folder per class, PNG or
//! JPEG files in each (decoded by the `image` crate).
//!
//! ```text
//! scans/
//!   benign/    a.png  b.jpg …      label 0
//!   malignant/ c.png …             label 1
//! ```
//!
//! Labels are the classes' positions in [`ImageFolderOptions::classes`], or, when
//! none are given, in the sorted sub-folder names. Every node of a federation must
//! agree on that order, so a node whose folder lacks a class must name the classes
//! explicitly; a sub-folder that is not a named class refuses the load. Files
//! directly in the top folder (a README) are not examples and are ignored.
//!
//! Every image must have the folder's size (no silent resizing: a resized scan is
//! a different example) and 8-bit samples (a 16-bit scan is refused rather than
//! squeezed into 8 bits); pixels become features channel-major (`C×H×W`, the
//! layout burn's 2-D convolutions take) as raw intensities 0–255, which the
//! federation's feature scaling standardizes like any other feature. An alpha
//! channel is dropped; colour becomes luma under [`Channels::Gray`]. A file that
//! does not decode, or has another size or depth, is a malformed row named by its
//! path, skipped or refusing the load as [`ImageFolderOptions::bad_files`] says.
//! Dot-files (`.DS_Store`, `._scan.png`) are not examples and are ignored.

use std::fs;
use std::path::{Path, PathBuf};

use image::{ColorType, DynamicImage, ImageDecoder, ImageReader};

use super::DataError;
use super::rows::{BadRowPolicy, BadRowReason, LoadedData, Position, RowSink};

/// The colour channels an image becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One channel, the luma.
    Gray,
    /// Three channels, red, green, blue.
    Rgb,
}

impl Channels {
    /// Channels per pixel.
    pub fn count(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::Rgb => 3,
        }
    }
}

/// How to read an image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolderOptions {
    /// Every image's width in pixels.
    pub width: u32,
    /// Every image's height in pixels.
    pub height: u32,
    /// The channels each image becomes.
    pub channels: Channels,
    /// The classes in label order; `None` for the sorted sub-folder names.
    pub classes: Option<Vec<String>>,
    /// What to do with a file that does not decode or has another size.
    pub bad_files: BadRowPolicy,
}

/// An image folder's examples and its classes in label order.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// The images that loaded, and the files skipped.
    pub loaded: LoadedData,
    /// The class names; label `i` is `classes[i]`.
    pub classes: Vec<String>,
}

/// Loads the images under `folder`, one sub-folder per class.
///
/// Fails if a folder cannot be listed, there are no class sub-folders, a
/// sub-folder is not a named class, a file is malformed under
/// [`BadRowPolicy::Reject`], or no image is usable.
pub fn load_image_folder(
    folder: impl AsRef<Path>,
    options: &ImageFolderOptions,
) -> Result<ImageFolder, DataError> {
    let folder = folder.as_ref();
    let found = class_folders(folder)?;
    let classes = match &options.classes {
        Some(classes) => classes.clone(),
        None => found.iter().map(|(name, _)| name.clone()).collect(),
    };
    let mut rows = RowSink::new(folder.to_owned(), options.bad_files);
    for (name, path) in &found {
        let label = (0u32..)
            .zip(&classes)
            .find_map(|(label, class)| (class == name).then_some(label))
            .ok_or_else(|| DataError::UnknownClass {
                path: folder.to_owned(),
                class: name.clone(),
                classes: classes.clone(),
            })?;
        for file in sorted_entries(path)?.into_iter().filter(|f| !hidden(f)) {
            match pixels(&file, options) {
                Ok(pixels) => {
                    rows.features.extend(pixels);
                    rows.labels.push(label);
                }
                Err(reason) => rows.bad(Position::File(file), reason)?,
            }
        }
    }
    let per_image = options.channels.count() * options.width as usize * options.height as usize;
    Ok(ImageFolder {
        loaded: rows.finish(per_image)?,
        classes,
    })
}

/// The class sub-folders of `folder`, (name, path), sorted by name.
fn class_folders(folder: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let classes: Vec<(String, PathBuf)> = sorted_entries(folder)?
        .into_iter()
        .filter(|path| path.is_dir() && !hidden(path))
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, path))
        })
        .collect();
    if classes.is_empty() {
        return Err(DataError::NoClasses {
            path: folder.to_owned(),
        });
    }
    Ok(classes)
}

/// The entries of `folder`, sorted, so that a load is reproducible.
fn sorted_entries(folder: &Path) -> Result<Vec<PathBuf>, DataError> {
    let list_error = |source| DataError::ListFolder {
        path: folder.to_owned(),
        source,
    };
    let mut entries = fs::read_dir(folder)
        .map_err(list_error)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(list_error)?;
    entries.sort();
    Ok(entries)
}

/// A dot-file (`.DS_Store`, macOS's `._scan.png`): not an example.
fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."))
}

/// The image's pixels as features, or why it is not usable. The size and
/// sample depth are read from the header before anything is decoded, so an
/// oversized file costs no more than a header read.
fn pixels(file: &Path, options: &ImageFolderOptions) -> Result<Vec<f32>, BadRowReason> {
    let undecodable = |detail: String| BadRowReason::Undecodable { detail };
    let decoder = ImageReader::open(file)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|error| undecodable(error.to_string()))?
        .into_decoder()
        .map_err(|error| undecodable(error.to_string()))?;
    let found = decoder.dimensions();
    let expected = (options.width, options.height);
    if found != expected {
        return Err(BadRowReason::ImageSize { expected, found });
    }
    let color = decoder.color_type();
    if !matches!(
        color,
        ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8
    ) {
        // Squeezing 16-bit scans into 8 bits would silently lose their contrast.
        return Err(BadRowReason::SampleDepth {
            color: format!("{color:?}"),
        });
    }
    let image =
        DynamicImage::from_decoder(decoder).map_err(|error| undecodable(error.to_string()))?;
    Ok(match options.channels {
        Channels::Gray => image
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(f32::from)
            .collect(),
        Channels::Rgb => channel_major(&image.to_rgb8().into_raw(), 3),
    })
}

/// Interleaved `H×W×C` bytes to channel-major `C×H×W` features.
fn channel_major(interleaved: &[u8], channels: usize) -> Vec<f32> {
    (0..channels)
        .flat_map(|channel| {
            interleaved
                .iter()
                .skip(channel)
                .step_by(channels)
                .map(|&value| f32::from(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma, Rgb, RgbImage};

    use super::*;

    fn gray(folder: &Path, name: &str, size: (u32, u32), value: u8) {
        let image = GrayImage::from_fn(size.0, size.1, |x, y| Luma([value + (x + 2 * y) as u8]));
        image.save(folder.join(name)).unwrap();
    }

    fn options(bad_files: BadRowPolicy) -> ImageFolderOptions {
        ImageFolderOptions {
            width: 2,
            height: 2,
            channels: Channels::Gray,
            classes: None,
            bad_files,
        }
    }

    /// `benign/` with two PNGs, `malignant/` with one, a README at the top.
    fn scans() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for class in ["benign", "malignant"] {
            fs::create_dir(root.path().join(class)).unwrap();
        }
        gray(&root.path().join("benign"), "a.png", (2, 2), 10);
        gray(&root.path().join("benign"), "b.png", (2, 2), 20);
        gray(&root.path().join("malignant"), "c.png", (2, 2), 30);
        fs::write(root.path().join("README.txt"), "not an example").unwrap();
        root
    }

    #[test]
    fn each_sub_folder_is_a_class_in_sorted_order() {
        let root = scans();
        let folder = load_image_folder(root.path(), &options(BadRowPolicy::Reject)).unwrap();
        assert_eq!(folder.classes, ["benign", "malignant"]);
        let data = folder.loaded.dataset;
        assert_eq!(data.num_features(), 4);
        assert_eq!(data.labels(), &[0, 0, 1]);
        // Row-major pixels: (0,0), (1,0), (0,1), (1,1).
        assert_eq!(&data.features()[..4], &[10.0, 11.0, 12.0, 13.0]);
        assert_eq!(&data.features()[8..], &[30.0, 31.0, 32.0, 33.0]);
    }

    #[test]
    fn a_jpeg_loads_like_a_png() {
        let root = scans();
        // A flat image survives JPEG's lossy coding to within one level.
        GrayImage::from_pixel(2, 2, Luma([100]))
            .save(root.path().join("malignant").join("d.jpg"))
            .unwrap();
        let data = load_image_folder(root.path(), &options(BadRowPolicy::Reject))
            .unwrap()
            .loaded
            .dataset;
        assert_eq!(data.labels(), &[0, 0, 1, 1]);
        assert!(
            data.features()[12..]
                .iter()
                .all(|v| (v - 100.0).abs() <= 1.0)
        );
    }

    #[test]
    fn rgb_pixels_become_channel_major_features() {
        let root = tempfile::tempdir().unwrap();
        let class = root.path().join("only");
        fs::create_dir(&class).unwrap();
        RgbImage::from_fn(2, 1, |x, _| Rgb([x as u8, 10 + x as u8, 20 + x as u8]))
            .save(class.join("x.png"))
            .unwrap();
        let rgb = ImageFolderOptions {
            width: 2,
            height: 1,
            channels: Channels::Rgb,
            ..options(BadRowPolicy::Reject)
        };
        let data = load_image_folder(root.path(), &rgb).unwrap().loaded.dataset;
        assert_eq!(data.features(), &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
    }

    #[test]
    fn a_file_that_does_not_decode_or_has_another_size_is_named() {
        let root = scans();
        let benign = root.path().join("benign");
        fs::write(benign.join("broken.png"), b"\x89PNG but truncated").unwrap();
        gray(&benign, "large.png", (3, 2), 0);
        let folder = load_image_folder(root.path(), &options(BadRowPolicy::Skip)).unwrap();
        assert_eq!(folder.loaded.dataset.labels(), &[0, 0, 1]);
        let skipped = &folder.loaded.skipped;
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0].at, Position::File(benign.join("broken.png")));
        assert!(matches!(
            skipped[0].reason,
            BadRowReason::Undecodable { .. }
        ));
        assert_eq!(skipped[1].at, Position::File(benign.join("large.png")));
        assert_eq!(
            skipped[1].reason,
            BadRowReason::ImageSize {
                expected: (2, 2),
                found: (3, 2)
            }
        );

        let error = load_image_folder(root.path(), &options(BadRowPolicy::Reject)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("broken.png"), "{message}");
    }

    #[test]
    fn dot_files_are_ignored_and_16_bit_images_refused() {
        let root = scans();
        let benign = root.path().join("benign");
        fs::write(benign.join(".DS_Store"), b"Bud1").unwrap();
        fs::write(benign.join("._a.png"), b"AppleDouble").unwrap();
        let folder = load_image_folder(root.path(), &options(BadRowPolicy::Reject)).unwrap();
        assert_eq!(folder.loaded.dataset.labels(), &[0, 0, 1]);

        image::ImageBuffer::<Luma<u16>, Vec<u16>>::from_pixel(2, 2, Luma([4000]))
            .save(benign.join("deep.png"))
            .unwrap();
        let folder = load_image_folder(root.path(), &options(BadRowPolicy::Skip)).unwrap();
        assert_eq!(folder.loaded.skipped.len(), 1);
        assert_eq!(
            folder.loaded.skipped[0].reason,
            BadRowReason::SampleDepth {
                color: "L16".into()
            }
        );
    }

    #[test]
    fn named_classes_fix_the_labels_and_refuse_a_stray_folder() {
        let root = scans();
        // This node has no `atypical` images, but its labels must match the others'.
        let named = ImageFolderOptions {
            classes: Some(vec!["atypical".into(), "benign".into(), "malignant".into()]),
            ..options(BadRowPolicy::Reject)
        };
        let folder = load_image_folder(root.path(), &named).unwrap();
        assert_eq!(folder.loaded.dataset.labels(), &[1, 1, 2]);

        fs::create_dir(root.path().join("unsorted")).unwrap();
        let error = load_image_folder(root.path(), &named).unwrap_err();
        assert!(
            matches!(&error, DataError::UnknownClass { class, .. } if class == "unsorted"),
            "{error:?}"
        );
    }

    #[test]
    fn a_folder_without_class_folders_is_refused() {
        let root = tempfile::tempdir().unwrap();
        gray(root.path(), "loose.png", (2, 2), 0);
        let error = load_image_folder(root.path(), &options(BadRowPolicy::Skip)).unwrap_err();
        assert!(matches!(error, DataError::NoClasses { .. }), "{error:?}");
    }
}
