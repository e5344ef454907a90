//! Copying a sled federation into PostgreSQL (issue #20 item 3; the
//! `store migrate` command around it, with the audit log verified after the
//! copy, is `crate::migrate`).

use super::{PgStore, Value, Write, bigint};
use crate::store::{SledStore, StoreError};

/// How many records of each kind a copy wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Rows per table, in the order the tables were copied.
    pub rows: Vec<(&'static str, u64)>,
}

fn text(bytes: &[u8], table: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Corrupt {
        key: format!("{table}/{bytes:?}"),
        reason: "key is not UTF-8".into(),
    })
}

/// A big-endian number key (`rounds`, `audit_entries`, `audit_heads`).
fn number(bytes: &[u8], table: &str) -> Result<Value, StoreError> {
    let n = SledStore::number(bytes, table)?;
    Ok(Value::Int(bigint(n, table)?))
}

/// A `failed_rounds` key: round (u64) then attempt (u32), big-endian.
fn round_and_attempt(bytes: &[u8]) -> Result<(Value, Value), StoreError> {
    let corrupt = || StoreError::Corrupt {
        key: format!("failed_rounds/{bytes:?}"),
        reason: "key is not a round and an attempt".into(),
    };
    let (round, attempt) = bytes.split_at_checked(8).ok_or_else(corrupt)?;
    let attempt: [u8; 4] = attempt.try_into().map_err(|_| corrupt())?;
    Ok((
        number(round, "failed_rounds")?,
        Value::Int(i64::from(u32::from_be_bytes(attempt))),
    ))
}

/// The row of one sled (key, value) pair of `table`.
fn row(table: &'static str, key: &[u8], value: &[u8]) -> Result<Write, StoreError> {
    let value_bytes = Value::Bytes(value.to_vec());
    let (sql, params) = match table {
        "meta" => (
            "INSERT INTO meta (key, value) VALUES ($1, $2)",
            vec![Value::Text(text(key, table)?), value_bytes],
        ),
        "nodes" => (
            "INSERT INTO nodes (node_id, record) VALUES ($1, $2)",
            vec![Value::Text(text(key, table)?), value_bytes],
        ),
        "rounds" => (
            "INSERT INTO rounds (round, record) VALUES ($1, $2)",
            vec![number(key, table)?, value_bytes],
        ),
        "failed_rounds" => {
            let (round, attempt) = round_and_attempt(key)?;
            (
                "INSERT INTO failed_rounds (round, attempt, record) VALUES ($1, $2, $3)",
                vec![round, attempt, value_bytes],
            )
        }
        "models" => (
            "INSERT INTO models (version, parameters) VALUES ($1, $2)",
            vec![Value::Text(text(key, table)?), value_bytes],
        ),
        "audit_entries" => (
            "INSERT INTO audit_entries (seq, entry) VALUES ($1, $2)",
            vec![number(key, table)?, value_bytes],
        ),
        "audit_heads" => (
            "INSERT INTO audit_heads (tree_size, head) VALUES ($1, $2)",
            vec![number(key, table)?, value_bytes],
        ),
        _ => (
            "INSERT INTO tainted_models (model_version, request_id) VALUES ($1, $2)",
            vec![
                Value::Text(text(key, table)?),
                Value::Text(text(value, table)?),
            ],
        ),
    };
    Ok(Write { sql, params })
}

impl PgStore {
    /// Copies every record of the sled store `from` into this database, which
    /// must hold no federation yet, in one transaction: the copy is whole or
    /// absent. Values are copied byte for byte.
    pub async fn copy_from_sled(&self, from: &SledStore) -> Result<CopySummary, StoreError> {
        let held: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT (SELECT count(*) FROM meta) + (SELECT count(*) FROM nodes) \
                 + (SELECT count(*) FROM rounds) + (SELECT count(*) FROM failed_rounds) \
                 + (SELECT count(*) FROM models) + (SELECT count(*) FROM audit_entries) \
                 + (SELECT count(*) FROM audit_heads) + (SELECT count(*) FROM tainted_models)",
                &[],
            )
            .await?
            .try_get(0)?;
        if held > 0 {
            return Err(StoreError::NotEmpty { rows: held });
        }
        let tables: [(&'static str, &sled::Tree); 8] = [
            ("meta", &from.meta),
            ("nodes", &from.nodes),
            ("rounds", &from.rounds),
            ("failed_rounds", &from.failed_rounds),
            ("models", &from.models),
            ("audit_entries", &from.audit_entries),
            ("audit_heads", &from.audit_heads),
            ("tainted_models", &from.tainted_models),
        ];
        let mut writes = Vec::new();
        let mut summary = CopySummary::default();
        for (table, tree) in tables {
            let before = writes.len();
            for item in tree.iter() {
                let (key, value) = item?;
                writes.push(row(table, &key, &value)?);
            }
            summary.rows.push((table, (writes.len() - before) as u64));
        }
        // The copy writes tainted versions: the in-memory set reads them
        // back from the table.
        let taints = self.taints.update().await;
        let copied = self.transact(&writes).await;
        taints.unknown();
        copied?;
        Ok(summary)
    }
}
