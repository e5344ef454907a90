//! Loading a node's data from a CSV file, plain or gzip-compressed.
//!
//! Every data row holds the features and one label column, all numeric; there is
//! no column header, only an optional number of leading lines to skip. The first
//! well-formed row fixes how many columns a row has. A row that is malformed (wrong
//! column count, a feature that is not a finite number, a label that is not a
//! non-negative integer) is either skipped and reported by its 1-based line number,
//! or rejects the whole file, as [`CsvOptions::bad_rows`] says. Gzip is recognized
//! by its magic bytes, whatever the file is called.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::DataError;
use super::rows::{BadRowPolicy, BadRowReason, Column, LoadedData, Position, RowSink};

/// Which column holds the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelColumn {
    /// The 0-based column index.
    Index(usize),
    /// The last column of every row.
    Last,
    /// No label: every column is a feature (rows to predict); each row gets label 0.
    None,
}

/// How to read a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Which column holds the label.
    pub label_column: LabelColumn,
    /// Lines to ignore at the top of the file (a header, a count line).
    pub header_lines: usize,
    /// What to do with a malformed row.
    pub bad_rows: BadRowPolicy,
}

impl Default for CsvOptions {
    /// Label last, no header, malformed rows rejected.
    fn default() -> Self {
        Self {
            label_column: LabelColumn::Last,
            header_lines: 0,
            bad_rows: BadRowPolicy::Reject,
        }
    }
}

/// Loads the labelled rows of `path` (plain or gzip CSV).
///
/// Fails if the file cannot be read, if a row is malformed under
/// [`BadRowPolicy::Reject`], or if no row is usable.
pub fn load_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<LoadedData, DataError> {
    let path = path.as_ref();
    let open_error = |source| DataError::Open {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(open_error)?);
    let is_gzip = file
        .fill_buf()
        .map_err(open_error)?
        .starts_with(&GZIP_MAGIC);
    let reader: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    read_rows(reader, path, options)
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn read_rows(
    reader: impl Read,
    path: &Path,
    options: &CsvOptions,
) -> Result<LoadedData, DataError> {
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(reader);

    let mut width = None;
    let mut rows = RowSink::new(path.to_owned(), options.bad_rows);
    let mut record = ::csv::ByteRecord::new();
    loop {
        let more = csv
            .read_byte_record(&mut record)
            .map_err(|source| DataError::Read {
                path: path.to_owned(),
                line: csv.position().line(),
                source,
            })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, ::csv::Position::line);
        if line <= options.header_lines as u64 {
            continue;
        }
        match parse_row(&record, width, options.label_column, &mut rows.features) {
            Ok(label) => {
                width.get_or_insert(record.len());
                rows.labels.push(label);
            }
            Err(reason) => rows.bad(Position::Line(line), reason)?,
        }
    }

    let label_columns = usize::from(options.label_column != LabelColumn::None);
    let num_features = width.map_or(0, |width| width - label_columns);
    rows.finish(num_features)
}

/// Appends the row's features to `features` and returns its label, or says why
/// the row is malformed (leaving `features` as it was).
fn parse_row(
    record: &::csv::ByteRecord,
    width: Option<usize>,
    label_column: LabelColumn,
    features: &mut Vec<f32>,
) -> Result<u32, BadRowReason> {
    let columns = record.len();
    if let Some(expected) = width
        && columns != expected
    {
        return Err(BadRowReason::ColumnCount {
            expected,
            found: columns,
        });
    }
    let label_index = match label_column {
        LabelColumn::Index(index) => Some(index),
        LabelColumn::Last => Some(columns.saturating_sub(1)),
        LabelColumn::None => None,
    };
    let label = match label_index {
        Some(index) => {
            let Some(label_field) = record.get(index) else {
                return Err(BadRowReason::NoLabelColumn { index, columns });
            };
            if columns < 2 {
                return Err(BadRowReason::NoFeatures);
            }
            parse_label(label_field)?
        }
        None if columns == 0 => return Err(BadRowReason::NoFeatures),
        None => 0,
    };

    let start = features.len();
    for (index, field) in record.iter().enumerate() {
        if Some(index) == label_index {
            continue;
        }
        match parse_feature(field, index + 1) {
            Ok(value) => features.push(value),
            Err(reason) => {
                features.truncate(start);
                return Err(reason);
            }
        }
    }
    Ok(label)
}

fn parse_feature(field: &[u8], column: usize) -> Result<f32, BadRowReason> {
    let text = String::from_utf8_lossy(field);
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(BadRowReason::NotFinite {
            column: Column::Number(column),
            text: text.into_owned(),
        }),
        Err(_) => Err(BadRowReason::NotANumber {
            column: Column::Number(column),
            text: text.into_owned(),
        }),
    }
}

fn parse_label(field: &[u8]) -> Result<u32, BadRowReason> {
    let text = String::from_utf8_lossy(field);
    // `u32::from_str` accepts a leading '+'; a label is plain digits.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadRowReason::BadLabel {
            text: text.into_owned(),
        });
    }
    text.parse().map_err(|_| BadRowReason::BadLabel {
        text: text.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use super::*;

    fn file_with(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents).unwrap();
        file.flush().unwrap();
        file
    }

    fn skipping() -> CsvOptions {
        CsvOptions {
            bad_rows: BadRowPolicy::Skip,
            ..CsvOptions::default()
        }
    }

    #[test]
    fn loads_a_good_file_with_a_header_line() {
        let file = file_with(b"3,2,no,yes\n1.5,2,0\n-3e-1, 4 ,1\n\n5,6.25,1\n");
        let options = CsvOptions {
            header_lines: 1,
            ..CsvOptions::default()
        };
        let loaded = load_csv(file.path(), &options).unwrap();
        assert!(loaded.skipped.is_empty());
        let data = loaded.dataset;
        assert_eq!(data.num_features(), 2);
        assert_eq!(data.features(), &[1.5, 2.0, -0.3, 4.0, 5.0, 6.25]);
        assert_eq!(data.labels(), &[0, 1, 1]);
    }

    #[test]
    fn label_column_may_be_anywhere() {
        let file = file_with(b"2,1.0,9\n0,7,8\n");
        let options = CsvOptions {
            label_column: LabelColumn::Index(0),
            ..CsvOptions::default()
        };
        let data = load_csv(file.path(), &options).unwrap().dataset;
        assert_eq!(data.labels(), &[2, 0]);
        assert_eq!(data.features(), &[1.0, 9.0, 7.0, 8.0]);
    }

    #[test]
    fn rows_without_a_label_are_all_features() {
        let file = file_with(b"2,1.0,9\n0,7,8\n");
        let options = CsvOptions {
            label_column: LabelColumn::None,
            ..CsvOptions::default()
        };
        let data = load_csv(file.path(), &options).unwrap().dataset;
        assert_eq!(data.num_features(), 3);
        assert_eq!(data.features(), &[2.0, 1.0, 9.0, 0.0, 7.0, 8.0]);
        assert_eq!(data.labels(), &[0, 0]);
    }

    #[test]
    fn skip_lists_bad_rows_by_line_number() {
        let file =
            file_with(b"header\n1,2,0\n1,2\n1,x,1\n1,NaN,0\n1,2,-1\n1,2,1.5\n3,4,1\n1,inf,0\n");
        let options = CsvOptions {
            header_lines: 1,
            ..skipping()
        };
        let loaded = load_csv(file.path(), &options).unwrap();
        assert_eq!(loaded.dataset.labels(), &[0, 1]);
        assert_eq!(loaded.dataset.features(), &[1.0, 2.0, 3.0, 4.0]);
        let lines: Vec<Position> = loaded.skipped.iter().map(|bad| bad.at.clone()).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 9].map(Position::Line));
        assert_eq!(
            loaded.skipped[0].reason,
            BadRowReason::ColumnCount {
                expected: 3,
                found: 2
            }
        );
        assert!(matches!(
            loaded.skipped[1].reason,
            BadRowReason::NotANumber {
                column: Column::Number(2),
                ..
            }
        ));
        assert!(matches!(
            loaded.skipped[2].reason,
            BadRowReason::NotFinite {
                column: Column::Number(2),
                ..
            }
        ));
        assert!(matches!(
            loaded.skipped[3].reason,
            BadRowReason::BadLabel { .. }
        ));
        assert!(matches!(
            loaded.skipped[4].reason,
            BadRowReason::BadLabel { .. }
        ));
    }

    #[test]
    fn reject_fails_on_the_first_bad_row_naming_its_line() {
        let file = file_with(b"1,2,0\n3,4,1\n5,six,1\n7,8\n");
        let error = load_csv(file.path(), &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(&error, DataError::BadRow { row, .. } if row.at == Position::Line(3)),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("\"six\""), "{message}");
    }

    #[test]
    fn a_file_without_usable_rows_is_an_error_naming_it() {
        let empty = file_with(b"");
        let error = load_csv(empty.path(), &skipping()).unwrap_err();
        assert!(matches!(error, DataError::NoUsableRows { skipped: 0, .. }));
        assert!(
            error
                .to_string()
                .contains(&empty.path().display().to_string())
        );

        let all_bad = file_with(b"a,b,c\n1,2,x\n");
        let error = load_csv(all_bad.path(), &skipping()).unwrap_err();
        assert!(matches!(error, DataError::NoUsableRows { skipped: 2, .. }));

        let header_only = file_with(b"569,30,malignant,benign\n");
        let options = CsvOptions {
            header_lines: 1,
            ..skipping()
        };
        assert!(matches!(
            load_csv(header_only.path(), &options),
            Err(DataError::NoUsableRows { skipped: 0, .. })
        ));

        let missing = empty.path().with_extension("missing");
        assert!(matches!(
            load_csv(&missing, &skipping()),
            Err(DataError::Open { .. })
        ));
    }

    #[test]
    fn gzip_is_read_transparently() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"0.5,1,2\n1.5,3,0\n").unwrap();
        let file = file_with(&encoder.finish().unwrap());
        let data = load_csv(file.path(), &CsvOptions::default())
            .unwrap()
            .dataset;
        assert_eq!(data.features(), &[0.5, 1.0, 1.5, 3.0]);
        assert_eq!(data.labels(), &[2, 0]);
    }

    #[test]
    fn bundled_data_sets_load_completely() {
        let cancer = load_csv(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../data/breast_cancer.csv"),
            &CsvOptions {
                header_lines: 1,
                ..CsvOptions::default()
            },
        )
        .unwrap();
        assert_eq!(cancer.dataset.len(), 569);
        assert_eq!(cancer.dataset.num_features(), 30);
        assert_eq!(
            cancer.dataset.class_counts(),
            BTreeMap::from([(0, 212), (1, 357)])
        );

        let digits = load_csv(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv.gz"),
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(digits.dataset.len(), 1797);
        assert_eq!(digits.dataset.num_features(), 64);
        assert_eq!(digits.dataset.class_counts().len(), 10);
    }
}
