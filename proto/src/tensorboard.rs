//! TensorBoard event files: per-round scalars (accuracy, loss, ε, participants)
//! that TensorBoard (`tensorboard --logdir DIR`) and the tools that read its
//! format chart and compare across runs.
//!
//! The format is TensorFlow's: a file named `events.out.tfevents.*` holding
//! TFRecord records, each
//!
//! ```text
//! u64 length (little-endian) · u32 masked CRC32C of the length · data · u32 masked CRC32C of data
//! ```
//!
//! (`tensorflow/core/lib/io/record_writer.cc`; the mask is
//! `((crc >> 15) | (crc << 17)) + 0xa282ead8`), whose data is a serialized
//! `tensorflow.Event` (`tensorflow/core/util/event.proto`): the first carries
//! `file_version = "brain.Event:2"`, each later one a `Summary` of
//! `simple_value` scalars at a step. Only the fields Cohort writes are declared
//! here, with their numbers from those schemas; protobuf readers skip the rest.
//!
//! Nothing private goes into these files beyond what the round records and the
//! `/metrics` endpoint already show an operator: aggregate scores, counts, ε.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// Why an event file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    /// The folder or file could not be created, written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A record's framing or checksum is wrong, or its event does not decode.
    #[error("{}: record {record} is corrupt: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The record's position (0-based).
        record: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// `tensorflow.Event`, the fields Cohort uses.
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`, a scalar.
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// What the first record of every event file says.
pub const FILE_VERSION: &str = "brain.Event:2";

/// An event file being written, one record per call, flushed after each so a
/// running TensorBoard sees every round as it completes.
#[derive(Debug)]
pub struct EventFile {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl EventFile {
    /// Creates a new event file in `dir` (creating the folder), named
    /// `events.out.tfevents.<unix seconds>.<suffix>` (give a suffix unique to
    /// the writer, e.g. with its process id); a second file in the same folder
    /// (a restarted coordinator) is a continuation TensorBoard merges by step.
    /// Fails rather than overwrite an existing file.
    pub fn create(dir: &Path, suffix: &str) -> Result<Self, EventFileError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let now = wall_time();
        let name = format!("events.out.tfevents.{}.{suffix}", now as u64);
        // The same second and suffix again (a restart in a container, where the
        // pid repeats): a numbered name, never an overwrite.
        let mut attempt = 0;
        loop {
            let path = match attempt {
                0 => dir.join(&name),
                n => dir.join(format!("{name}.{n}")),
            };
            match Self::create_new(path, now) {
                Err(EventFileError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn create_new(path: PathBuf, now: f64) -> Result<Self, EventFileError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut events = Self {
            path,
            writer: BufWriter::new(file),
        };
        events.append(&Event {
            wall_time: now,
            step: 0,
            file_version: Some(FILE_VERSION.to_owned()),
            summary: None,
        })?;
        Ok(events)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `scalars` (tag, value) at `step`, stamped with the current time.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> Result<(), EventFileError> {
        let value = scalars
            .iter()
            .map(|(tag, value)| SummaryValue {
                tag: (*tag).to_owned(),
                simple_value: Some(*value as f32),
            })
            .collect();
        self.append(&Event {
            wall_time: wall_time(),
            step: i64::try_from(step).unwrap_or(i64::MAX),
            file_version: None,
            summary: Some(Summary { value }),
        })
    }

    fn append(&mut self, event: &Event) -> Result<(), EventFileError> {
        let data = event.encode_to_vec();
        let length = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&length);
        record.extend_from_slice(&masked_crc(&length).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc(&data).to_le_bytes());
        self.writer
            .write_all(&record)
            .and_then(|()| self.writer.flush())
            .map_err(io_error(&self.path))
    }
}

/// One scalar read back from an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The step (for Cohort, the round).
    pub step: u64,
    /// The tag, e.g. `eval/accuracy`.
    pub tag: String,
    /// The value (TensorBoard keeps scalars as `f32`).
    pub value: f32,
}

/// Reads every scalar of the event file at `path`, checking each record's
/// length and data checksums; fails on the first corrupt record, naming it.
pub fn read_scalars(path: &Path) -> Result<Vec<Scalar>, EventFileError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io_error(path))?;
    let mut scalars = Vec::new();
    let mut rest = bytes.as_slice();
    let mut record = 0;
    while !rest.is_empty() {
        let corrupt = |problem| EventFileError::Corrupt {
            path: path.to_owned(),
            record,
            problem,
        };
        let (event, after) = read_record(rest).map_err(corrupt)?;
        let event = Event::decode(event).map_err(|_| corrupt("the event does not decode"))?;
        let step = u64::try_from(event.step).map_err(|_| corrupt("a negative step"))?;
        for value in event.summary.map(|s| s.value).unwrap_or_default() {
            if let Some(simple) = value.simple_value {
                scalars.push(Scalar {
                    step,
                    tag: value.tag,
                    value: simple,
                });
            }
        }
        rest = after;
        record += 1;
    }
    Ok(scalars)
}

/// One TFRecord's data and what follows it.
fn read_record(bytes: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (length, rest) = bytes.split_first_chunk::<8>().ok_or("a truncated length")?;
    let (length_crc, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("a truncated length checksum")?;
    if u32::from_le_bytes(*length_crc) != masked_crc(length) {
        return Err("the length's checksum does not match");
    }
    let length =
        usize::try_from(u64::from_le_bytes(*length)).map_err(|_| "an impossible length")?;
    let (data, rest) = rest.split_at_checked(length).ok_or("truncated data")?;
    let (data_crc, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("a truncated data checksum")?;
    if u32::from_le_bytes(*data_crc) != masked_crc(data) {
        return Err("the data's checksum does not match");
    }
    Ok((data, rest))
}

/// An I/O error's mapping, naming `path`.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EventFileError {
    let path = path.to_owned();
    move |source| EventFileError::Io { path, source }
}

/// TFRecord's masked CRC32C (masked so that a CRC over data that embeds CRCs
/// stays strong).
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scalars_read_back_by_step_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = EventFile::create(dir.path(), "test").unwrap();
        events
            .scalars(1, &[("eval/accuracy", 0.5), ("privacy/epsilon", 0.25)])
            .unwrap();
        events.scalars(2, &[("eval/accuracy", 0.75)]).unwrap();
        let name = events.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("events.out.tfevents.") && name.ends_with(".test"));
        let read = read_scalars(events.path()).unwrap();
        let got: Vec<(u64, &str, f32)> = read
            .iter()
            .map(|s| (s.step, s.tag.as_str(), s.value))
            .collect();
        assert_eq!(
            got,
            [
                (1, "eval/accuracy", 0.5),
                (1, "privacy/epsilon", 0.25),
                (2, "eval/accuracy", 0.75)
            ]
        );
    }

    #[test]
    fn the_first_record_is_the_file_version_with_tensorflows_framing() {
        let dir = tempfile::tempdir().unwrap();
        let events = EventFile::create(dir.path(), "test").unwrap();
        let bytes = std::fs::read(events.path()).unwrap();
        let (data, rest) = read_record(&bytes).unwrap();
        assert!(rest.is_empty());
        let event = Event::decode(data).unwrap();
        assert_eq!(event.file_version.as_deref(), Some(FILE_VERSION));
        // The masked CRC32C of TFRecord: crc32c("") = 0, masked = 0xa282ead8.
        assert_eq!(masked_crc(b""), 0xa282_ead8);
        // crc32c("123456789") = 0xe3069283 (RFC 3720, B.4's check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn a_flipped_byte_is_named_as_a_corrupt_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = EventFile::create(dir.path(), "test").unwrap();
        events.scalars(1, &[("eval/loss", 0.5)]).unwrap();
        let path = events.path().to_owned();
        drop(events);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let error = read_scalars(&path).unwrap_err();
        assert!(
            matches!(error, EventFileError::Corrupt { record: 1, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let first = EventFile::create(dir.path(), "same").unwrap();
        let taken = first.path().to_owned();
        drop(first);
        let before = std::fs::read(&taken).unwrap();
        let error = EventFile::create_new(taken.clone(), 0.0).unwrap_err();
        assert!(
            matches!(&error, EventFileError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{error:?}"
        );
        assert_eq!(std::fs::read(&taken).unwrap(), before);
    }

    #[test]
    fn a_second_writer_with_the_same_suffix_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..3)
            .map(|_| {
                EventFile::create(dir.path(), "pid-1")
                    .unwrap()
                    .path()
                    .to_owned()
            })
            .collect();
        assert!(files[0] != files[1] && files[1] != files[2] && files[0] != files[2]);
    }
}
