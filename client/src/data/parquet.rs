//! Loading a node's data from a Parquet file (Apache Parquet, read through the
//! `parquet` crate's Arrow reader).
//!
//! Columns are chosen by name: one label column and the feature columns (by
//! default every other column, in the file's order). Only those columns are read
//! (a projection, so a wide table's other columns cost nothing). Types are checked
//! against the schema before any row is read: a feature must be numeric (any
//! integer, float or decimal type) or boolean, the label an integer or boolean
//! type; anything else refuses the file naming the column and its type. Row by
//! row, a null, a NaN or infinity (or a value beyond `f32`'s range), or a label
//! that is negative or above `u32::MAX` is a malformed row, skipped and listed by
//! its 1-based row number or refusing the file, as
//! [`ParquetOptions::bad_rows`] says — the rules of the CSV loader.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;

use super::DataError;
use super::error::ColumnRole;
use super::rows::{BadRowPolicy, BadRowReason, Column, LoadedData, Position, RowSink};

/// Which columns of a Parquet file to read, and how to treat bad rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    /// The label column's name; `None` for rows to predict (every row gets label 0).
    pub label: Option<String>,
    /// The feature columns, in this order; `None` for every column but the label,
    /// in the file's order.
    pub features: Option<Vec<String>>,
    /// What to do with a malformed row.
    pub bad_rows: BadRowPolicy,
}

/// Loads the labelled rows of the Parquet file at `path`.
///
/// Fails if the file cannot be read as Parquet, a named column is missing or has
/// a type that cannot be used, a row is malformed under [`BadRowPolicy::Reject`],
/// or no row is usable.
pub fn load_parquet(
    path: impl AsRef<Path>,
    options: &ParquetOptions,
) -> Result<LoadedData, DataError> {
    let path = path.as_ref();
    let parquet_error = |source| DataError::Parquet {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| DataError::Open {
        path: path.to_owned(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let selection = Selection::of(builder.schema(), path, options)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), selection.roots());
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(parquet_error)?;

    let mut rows = RowSink::new(path.to_owned(), options.bad_rows);
    let mut first_row = 1;
    for batch in reader {
        let batch = batch.map_err(|error| parquet_error(ParquetError::from(error)))?;
        let columns = selection.columns_of(&batch).map_err(parquet_error)?;
        columns.append_rows(first_row, &mut rows)?;
        first_row += batch.num_rows() as u64;
    }
    rows.finish(selection.features.len())
}

/// The label and feature columns, checked against the file's schema.
struct Selection {
    /// (root index in the file, name) of the label.
    label: Option<(usize, String)>,
    /// (root index in the file, name) of each feature, in the options' order.
    features: Vec<(usize, String)>,
}

impl Selection {
    fn of(schema: &Schema, path: &Path, options: &ParquetOptions) -> Result<Self, DataError> {
        let find = |name: &str| {
            schema.index_of(name).map_err(|_| DataError::NoSuchColumn {
                path: path.to_owned(),
                column: name.to_owned(),
                available: schema.fields().iter().map(|f| f.name().clone()).collect(),
            })
        };
        let checked = |index: usize, usable: fn(&DataType) -> bool, role| {
            let field = schema.field(index);
            if usable(field.data_type()) {
                Ok((index, field.name().clone()))
            } else {
                Err(DataError::ColumnType {
                    path: path.to_owned(),
                    column: field.name().clone(),
                    found: field.data_type().to_string(),
                    role,
                })
            }
        };
        let label = match &options.label {
            Some(name) => Some(checked(find(name)?, usable_label, ColumnRole::Label)?),
            None => None,
        };
        let feature_indices: Vec<usize> = match &options.features {
            Some(names) => names
                .iter()
                .map(|name| find(name))
                .collect::<Result<_, _>>()?,
            None => (0..schema.fields().len())
                .filter(|index| label.as_ref().is_none_or(|(label, _)| label != index))
                .collect(),
        };
        let features = feature_indices
            .into_iter()
            .map(|index| checked(index, usable_feature, ColumnRole::Feature))
            .collect::<Result<Vec<_>, _>>()?;
        refuse_reuse(label.as_ref(), &features, path)?;
        if features.is_empty() {
            return Err(DataError::NoFeatures);
        }
        Ok(Self { label, features })
    }

    /// The root columns to read, each once.
    fn roots(&self) -> Vec<usize> {
        let mut roots: Vec<usize> = self.features.iter().map(|(index, _)| *index).collect();
        roots.extend(self.label.as_ref().map(|(index, _)| *index));
        roots.sort_unstable();
        roots.dedup();
        roots
    }

    /// The batch's selected columns, cast to the types rows are read in. The
    /// batch holds the projected roots in file order; columns are found by
    /// position, since two columns may share a name.
    fn columns_of(&self, batch: &RecordBatch) -> Result<BatchColumns, ParquetError> {
        let roots = self.roots();
        let column = |index: &usize| {
            roots
                .binary_search(index)
                .ok()
                .filter(|position| *position < batch.num_columns())
                .map(|position| batch.column(position).clone())
                .ok_or_else(|| {
                    ParquetError::General(format!("the reader returned no column {index}"))
                })
        };
        let features = self
            .features
            .iter()
            .map(|(index, name)| Ok((name.clone(), cast(&column(index)?, &DataType::Float64)?)))
            .collect::<Result<Vec<_>, ParquetError>>()?;
        let label = match &self.label {
            Some((index, name)) => Some((name.clone(), Label::of(&column(index)?)?)),
            None => None,
        };
        Ok(BatchColumns { label, features })
    }
}

/// A column used twice — the label also as a feature (the model would be
/// trained on its own target), or a feature listed twice — is refused.
fn refuse_reuse(
    label: Option<&(usize, String)>,
    features: &[(usize, String)],
    path: &Path,
) -> Result<(), DataError> {
    let mut seen: Vec<usize> = label.iter().map(|(index, _)| *index).collect();
    for (index, name) in features {
        if seen.contains(index) {
            return Err(DataError::ColumnTwice {
                path: path.to_owned(),
                column: name.clone(),
            });
        }
        seen.push(*index);
    }
    Ok(())
}

fn usable_feature(data_type: &DataType) -> bool {
    data_type.is_numeric() || *data_type == DataType::Boolean
}

fn usable_label(data_type: &DataType) -> bool {
    data_type.is_integer() || *data_type == DataType::Boolean
}

fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ParquetError> {
    Ok(arrow_cast::cast(array, to)?)
}

/// One batch's label, widened losslessly: signed integers to `i64`, unsigned
/// ones and booleans to `u64`.
enum Label {
    Signed(ArrayRef),
    Unsigned(ArrayRef),
}

impl Label {
    fn of(array: &ArrayRef) -> Result<Self, ParquetError> {
        Ok(if array.data_type().is_signed_integer() {
            Self::Signed(cast(array, &DataType::Int64)?)
        } else {
            Self::Unsigned(cast(array, &DataType::UInt64)?)
        })
    }

    fn at(&self, row: usize, name: &str) -> Result<u32, BadRowReason> {
        let (Self::Signed(array) | Self::Unsigned(array)) = self;
        if array.is_null(row) {
            return Err(BadRowReason::Missing {
                column: Column::Named(name.to_owned()),
            });
        }
        let bad = |text: String| BadRowReason::BadLabel { text };
        match self {
            Self::Signed(array) => {
                let value = array.as_primitive::<Int64Type>().value(row);
                u32::try_from(value).map_err(|_| bad(value.to_string()))
            }
            Self::Unsigned(array) => {
                let value = array.as_primitive::<UInt64Type>().value(row);
                u32::try_from(value).map_err(|_| bad(value.to_string()))
            }
        }
    }
}

/// The selected columns of one record batch.
struct BatchColumns {
    /// (name, values) of the label.
    label: Option<(String, Label)>,
    /// (name, values as `f64`) of each feature.
    features: Vec<(String, ArrayRef)>,
}

impl BatchColumns {
    fn append_rows(&self, first_row: u64, rows: &mut RowSink) -> Result<(), DataError> {
        let count = self.features.first().map_or(0, |(_, array)| array.len());
        for row in 0..count {
            match self.row(row, &mut rows.features) {
                Ok(label) => rows.labels.push(label),
                Err(reason) => rows.bad(Position::Row(first_row + row as u64), reason)?,
            }
        }
        Ok(())
    }

    /// Appends one row's features and returns its label, or says why the row is
    /// malformed (leaving `features` as it was).
    fn row(&self, row: usize, features: &mut Vec<f32>) -> Result<u32, BadRowReason> {
        let label = match &self.label {
            Some((name, label)) => label.at(row, name)?,
            None => 0,
        };
        let start = features.len();
        for (name, array) in &self.features {
            match feature(array, row, name) {
                Ok(value) => features.push(value),
                Err(reason) => {
                    features.truncate(start);
                    return Err(reason);
                }
            }
        }
        Ok(label)
    }
}

fn feature(array: &ArrayRef, row: usize, name: &str) -> Result<f32, BadRowReason> {
    let column = || Column::Named(name.to_owned());
    if array.is_null(row) {
        return Err(BadRowReason::Missing { column: column() });
    }
    let value = array.as_primitive::<Float64Type>().value(row);
    let narrowed = value as f32;
    if narrowed.is_finite() {
        Ok(narrowed)
    } else {
        Err(BadRowReason::NotFinite {
            column: column(),
            text: format!("{value:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{BooleanArray, Float32Array, Float64Array, Int8Array, Int32Array};
    use arrow_array::{StringArray, UInt64Array};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use std::sync::Arc;

    use super::*;
    use crate::data::{CsvOptions, LabelColumn, content_sha256, load_csv};

    /// Writes `columns` as a Parquet file, `rows_per_group` rows per row group.
    fn parquet_with(
        columns: Vec<(&str, ArrayRef)>,
        rows_per_group: usize,
    ) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        let mut writer =
            ArrowWriter::try_new(file.reopen().unwrap(), batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        file
    }

    fn options(label: &str, features: Option<&[&str]>, bad_rows: BadRowPolicy) -> ParquetOptions {
        ParquetOptions {
            label: Some(label.to_owned()),
            features: features.map(|names| names.iter().map(|name| (*name).to_owned()).collect()),
            bad_rows,
        }
    }

    fn table() -> Vec<(&'static str, ArrayRef)> {
        vec![
            (
                "id",
                Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef,
            ),
            ("age", Arc::new(Int32Array::from(vec![40, 51, 62]))),
            (
                "smoker",
                Arc::new(BooleanArray::from(vec![true, false, true])),
            ),
            ("dose", Arc::new(Float64Array::from(vec![0.5, 1.25, -2.0]))),
            ("outcome", Arc::new(Int8Array::from(vec![1, 0, 1]))),
        ]
    }

    #[test]
    fn reads_the_named_columns_in_the_order_asked() {
        let file = parquet_with(table(), 2);
        let chosen = options(
            "outcome",
            Some(&["dose", "age", "smoker"]),
            BadRowPolicy::Reject,
        );
        let loaded = load_parquet(file.path(), &chosen).unwrap();
        assert!(loaded.skipped.is_empty());
        let data = loaded.dataset;
        assert_eq!(data.num_features(), 3);
        assert_eq!(
            data.features(),
            &[0.5, 40.0, 1.0, 1.25, 51.0, 0.0, -2.0, 62.0, 1.0]
        );
        assert_eq!(data.labels(), &[1, 0, 1]);
    }

    #[test]
    fn a_column_that_is_not_numeric_is_refused_by_name_and_type() {
        let file = parquet_with(table(), 1024);
        // Every other column by default: `id` is text.
        let error =
            load_parquet(file.path(), &options("outcome", None, BadRowPolicy::Skip)).unwrap_err();
        assert!(
            matches!(&error, DataError::ColumnType { column, .. } if column == "id"),
            "{error:?}"
        );
        assert!(error.to_string().contains("Utf8"), "{error}");
        // A float label is not a class.
        let error = load_parquet(
            file.path(),
            &options("dose", Some(&["age"]), BadRowPolicy::Skip),
        )
        .unwrap_err();
        assert!(
            matches!(&error, DataError::ColumnType { column, .. } if column == "dose"),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_column_is_named_with_the_files_columns() {
        let file = parquet_with(table(), 1024);
        let error = load_parquet(
            file.path(),
            &options("outcome", Some(&["weight"]), BadRowPolicy::Skip),
        )
        .unwrap_err();
        let DataError::NoSuchColumn {
            column, available, ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(column, "weight");
        assert_eq!(available, &["id", "age", "smoker", "dose", "outcome"]);
    }

    #[test]
    fn the_label_as_a_feature_or_a_feature_twice_is_refused() {
        let file = parquet_with(table(), 1024);
        for features in [&["age", "outcome"][..], &["age", "dose", "age"][..]] {
            let error = load_parquet(
                file.path(),
                &options("outcome", Some(features), BadRowPolicy::Skip),
            )
            .unwrap_err();
            assert!(
                matches!(&error, DataError::ColumnTwice { .. }),
                "{features:?}: {error:?}"
            );
        }
    }

    #[test]
    fn columns_that_share_a_name_are_read_each_from_its_own_position() {
        let file = parquet_with(
            vec![
                ("x", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
                ("x", Arc::new(Float64Array::from(vec![0.5, 0.25]))),
                ("label", Arc::new(Int8Array::from(vec![0, 1]))),
            ],
            1024,
        );
        let data = load_parquet(file.path(), &options("label", None, BadRowPolicy::Reject))
            .unwrap()
            .dataset;
        assert_eq!(data.features(), &[1.0, 0.5, 2.0, 0.25]);
    }

    fn bad_rows_table() -> Vec<(&'static str, ArrayRef)> {
        vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    None,
                    Some(f64::NAN),
                    Some(1e300),
                    Some(2.0),
                    Some(3.0),
                    Some(4.0),
                ])) as ArrayRef,
            ),
            ("y", Arc::new(Float32Array::from(vec![0.5; 7]))),
            (
                "label",
                Arc::new(Int32Array::from(vec![
                    Some(0),
                    Some(1),
                    Some(1),
                    Some(0),
                    Some(-1),
                    None,
                    Some(1),
                ])),
            ),
        ]
    }

    #[test]
    fn skip_lists_each_bad_row_by_its_row_number_across_row_groups() {
        let file = parquet_with(bad_rows_table(), 3);
        let loaded =
            load_parquet(file.path(), &options("label", None, BadRowPolicy::Skip)).unwrap();
        assert_eq!(loaded.dataset.labels(), &[0, 1]);
        assert_eq!(loaded.dataset.features(), &[1.0, 0.5, 4.0, 0.5]);
        let at: Vec<Position> = loaded.skipped.iter().map(|bad| bad.at.clone()).collect();
        assert_eq!(at, [2, 3, 4, 5, 6].map(Position::Row));
        let named = |name: &str| Column::Named(name.to_owned());
        let reasons: Vec<&BadRowReason> = loaded.skipped.iter().map(|bad| &bad.reason).collect();
        assert_eq!(reasons[0], &BadRowReason::Missing { column: named("x") });
        assert!(
            matches!(reasons[1], BadRowReason::NotFinite { column, .. } if *column == named("x"))
        );
        assert!(
            matches!(reasons[2], BadRowReason::NotFinite { column, text } if *column == named("x") && text == "1e300")
        );
        assert_eq!(reasons[3], &BadRowReason::BadLabel { text: "-1".into() });
        assert_eq!(
            reasons[4],
            &BadRowReason::Missing {
                column: named("label")
            }
        );
    }

    #[test]
    fn reject_names_the_first_bad_row() {
        let file = parquet_with(bad_rows_table(), 3);
        let error =
            load_parquet(file.path(), &options("label", None, BadRowPolicy::Reject)).unwrap_err();
        assert!(
            matches!(&error, DataError::BadRow { row, .. } if row.at == Position::Row(2)),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("row 2") && message.contains("\"x\""),
            "{message}"
        );
    }

    #[test]
    fn a_label_beyond_32_bits_is_a_bad_row() {
        let file = parquet_with(
            vec![
                (
                    "x",
                    Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
                ),
                (
                    "label",
                    Arc::new(UInt64Array::from(vec![3, u64::from(u32::MAX) + 1])),
                ),
            ],
            1024,
        );
        let loaded =
            load_parquet(file.path(), &options("label", None, BadRowPolicy::Skip)).unwrap();
        assert_eq!(loaded.dataset.labels(), &[3]);
        assert_eq!(
            loaded.skipped[0].reason,
            BadRowReason::BadLabel {
                text: "4294967296".into()
            }
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_is_refused_as_such() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"1,2,0\n3,4,1\n").unwrap();
        let error =
            load_parquet(file.path(), &options("label", None, BadRowPolicy::Skip)).unwrap_err();
        assert!(matches!(error, DataError::Parquet { .. }), "{error:?}");
    }

    #[test]
    fn the_same_rows_have_the_same_content_hash_as_from_csv() {
        // Lineage and erasure key on the data set's content hash, whatever the format.
        let csv = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(csv.path(), b"0.5,40,1\n1.25,51,0\n-2,62,1\n").unwrap();
        let from_csv = load_csv(
            csv.path(),
            &CsvOptions {
                label_column: LabelColumn::Last,
                ..CsvOptions::default()
            },
        )
        .unwrap();
        let file = parquet_with(table(), 1024);
        let from_parquet = load_parquet(
            file.path(),
            &options("outcome", Some(&["dose", "age"]), BadRowPolicy::Reject),
        )
        .unwrap();
        assert_eq!(
            content_sha256(&from_csv.dataset),
            content_sha256(&from_parquet.dataset)
        );
    }
}
