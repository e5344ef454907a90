//! Rounds, erasure steps and the audit log on PostgreSQL: the writes that
//! commit together, and the ordered reads.

use std::ops::Range;

use cohort_privacy::PrivacyLedger;

use super::{
    PgStore, Value, Write, audit_writes, bigint, bound, put_meta, put_model, remove_meta, unsigned,
};
use crate::store::records::{
    AuditBatch, EvaluationSummary, FederationHead, Remediation, RoundOutcome, RoundRecord,
};
use crate::store::{
    HEAD, PRIVACY_LEDGER, REMEDIATIONS, SCALING, STRATEGY_STATE, StoreError, decode, encode,
    strategy_state_of,
};
use crate::strategy::StrategyState;

impl PgStore {
    /// Writes a completed round in one transaction: model, record, head, the
    /// round's audit entries, the ledger with this round's spend and the
    /// strategy's state after it (see [`crate::store::Store::commit_round`]).
    pub async fn commit_round(
        &self,
        record: &RoundRecord,
        model_version: &str,
        encoded_model: &[u8],
        ledger: Option<&PrivacyLedger>,
        strategy_state: Option<&StrategyState>,
        audit: &AuditBatch,
    ) -> Result<FederationHead, StoreError> {
        let head = FederationHead::at(record.round, model_version);
        let key = format!("rounds/{}", record.round);
        let mut writes = vec![
            put_model(model_version, encoded_model),
            Write {
                sql: "INSERT INTO rounds (round, record) VALUES ($1, $2) \
                      ON CONFLICT (round) DO UPDATE SET record = EXCLUDED.record",
                params: vec![
                    Value::Int(bigint(record.round, &key)?),
                    Value::Bytes(encode(&key, record)?),
                ],
            },
            put_meta(HEAD, encode(HEAD, &head)?),
        ];
        if let Some(ledger) = ledger {
            writes.push(put_meta(PRIVACY_LEDGER, encode(PRIVACY_LEDGER, ledger)?));
        }
        let of_round = strategy_state_of(record.round);
        match strategy_state {
            Some(state) => {
                let bytes = encode(STRATEGY_STATE, state)?;
                writes.push(put_meta(STRATEGY_STATE, bytes.clone()));
                writes.push(put_meta(&of_round, bytes));
            }
            None => {
                writes.push(remove_meta(&of_round));
                writes.push(remove_meta(STRATEGY_STATE));
            }
        }
        writes.extend(audit_writes(audit)?);
        self.transact(&writes).await?;
        Ok(head)
    }

    /// Keeps a failed attempt (the head does not move).
    pub async fn record_failed_round(&self, record: &RoundRecord) -> Result<(), StoreError> {
        let key = format!("failed_rounds/{}", record.round);
        self.transact(&[Write {
            sql: "INSERT INTO failed_rounds (round, attempt, record) VALUES ($1, $2, $3) \
                  ON CONFLICT (round, attempt) DO UPDATE SET record = EXCLUDED.record",
            params: vec![
                Value::Int(bigint(record.round, &key)?),
                Value::Int(i64::from(record.attempt)),
                Value::Bytes(encode(&key, record)?),
            ],
        }])
        .await
    }

    /// Adds federated-evaluation metrics to a completed round (the round's
    /// row locked from read to write).
    pub async fn set_round_evaluation(
        &self,
        round: u64,
        evaluation: EvaluationSummary,
    ) -> Result<RoundRecord, StoreError> {
        let key = format!("rounds/{round}");
        let number = bigint(round, &key)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(current) = super::lease::check_fence(&tx, self.fence).await? {
            return Err(self.fenced_error(current));
        }
        let row = tx
            .query_opt(
                "SELECT record FROM rounds WHERE round = $1 FOR UPDATE",
                &[&number],
            )
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NoSuchRound(round));
        };
        let mut record: RoundRecord = decode(&key, row.try_get(0)?)?;
        if let RoundOutcome::Completed {
            evaluation: slot, ..
        } = &mut record.outcome
        {
            *slot = Some(evaluation);
        }
        tx.execute(
            "UPDATE rounds SET record = $2 WHERE round = $1",
            &[&number, &encode(&key, &record)?],
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Appends an audit batch (entries, heads, frontier) in one transaction.
    pub async fn append_audit(&self, batch: &AuditBatch) -> Result<(), StoreError> {
        self.transact(&audit_writes(batch)?).await
    }

    /// Every model version an erasure request tainted, in version order
    /// (from memory after the first read: [`super::taints`]).
    pub async fn tainted_models(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.taints.read(self).await?.iter().cloned().collect())
    }

    /// Whether an erasure request tainted `model_version` (from memory after
    /// the first read: [`super::taints`]).
    pub async fn is_tainted(&self, model_version: &str) -> Result<bool, StoreError> {
        Ok(self.taints.read(self).await?.contains(model_version))
    }

    /// The `tainted_models` table's versions, in version order (byte order,
    /// as a `BTreeSet<String>` keeps them).
    pub(super) async fn stored_tainted_models(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT model_version FROM tainted_models ORDER BY model_version COLLATE \"C\"",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Erasure remediations not yet finished.
    pub async fn remediations(&self) -> Result<Vec<Remediation>, StoreError> {
        Ok(self.meta(REMEDIATIONS).await?.unwrap_or_default())
    }

    /// One step of an erasure request in one transaction (see
    /// [`crate::store::Store::commit_erasure_step`]): the rolled-back head gets the strategy
    /// state committed with its round, read inside the same transaction.
    pub async fn commit_erasure_step(
        &self,
        tainted: &[(String, String)],
        remediations: &[Remediation],
        head: Option<&FederationHead>,
        audit: &AuditBatch,
    ) -> Result<(), StoreError> {
        let mut writes: Vec<Write> = tainted
            .iter()
            .map(|(model, request)| Write {
                sql: "INSERT INTO tainted_models (model_version, request_id) VALUES ($1, $2) \
                      ON CONFLICT (model_version) DO UPDATE SET request_id = EXCLUDED.request_id",
                params: vec![Value::Text(model.clone()), Value::Text(request.clone())],
            })
            .collect();
        writes.push(put_meta(REMEDIATIONS, encode(REMEDIATIONS, &remediations)?));
        if let Some(head) = head {
            writes.push(put_meta(HEAD, encode(HEAD, head)?));
            writes.push(remove_meta(STRATEGY_STATE));
            if head.completed_rounds > 0 {
                writes.push(Write {
                    sql: "INSERT INTO meta (key, value) SELECT $1, value FROM meta WHERE key = $2",
                    params: vec![
                        Value::Text(STRATEGY_STATE.to_owned()),
                        Value::Text(strategy_state_of(head.completed_rounds)),
                    ],
                });
            } else {
                writes.push(remove_meta(SCALING));
            }
        }
        writes.extend(audit_writes(audit)?);
        // Held across the commit: no fetch sees the taint durable but not
        // yet in memory.
        let taints = self.taints.update().await;
        match self.transact(&writes).await {
            Ok(()) => {
                taints.committed(tainted.iter().map(|(model, _)| model));
                Ok(())
            }
            Err(error) => {
                taints.unknown();
                Err(error)
            }
        }
    }

    /// The audit tree's frontier as of the last append, as stored.
    pub async fn audit_frontier(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.bytes(
            "SELECT value FROM meta WHERE key = $1",
            &crate::store::AUDIT_FRONTIER,
        )
        .await
    }

    /// How many audit entries are stored (one past the last sequence number).
    pub async fn audit_len(&self) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT max(seq) FROM audit_entries", &[])
            .await?;
        match row.try_get::<_, Option<i64>>(0)? {
            None => Ok(0),
            Some(last) => Ok(unsigned(last, "audit_entries")? + 1),
        }
    }

    /// The signed tree head with the largest tree size, as stored.
    pub async fn latest_audit_head(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .numbered(
                "SELECT tree_size, head FROM audit_heads ORDER BY tree_size DESC LIMIT 1",
                "audit_heads",
                &[],
            )
            .await?
            .pop())
    }

    /// Audit entries in order, as stored.
    pub async fn audit_entries(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.audit_entries_in(0..u64::MAX).await
    }

    /// Audit entries with sequence numbers in `range`, in order.
    pub async fn audit_entries_in(
        &self,
        range: Range<u64>,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.numbered(
            "SELECT seq, entry FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
            "audit_entries",
            &[Value::Int(bound(range.start)), Value::Int(bound(range.end))],
        )
        .await
    }

    /// Signed tree heads by tree size, as stored.
    pub async fn audit_heads(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.audit_heads_in(0..u64::MAX, usize::MAX).await
    }

    /// At most `limit` signed tree heads with tree sizes in `range`, smallest first.
    pub async fn audit_heads_in(
        &self,
        range: Range<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.numbered(
            "SELECT tree_size, head FROM audit_heads WHERE tree_size >= $1 AND tree_size < $2 \
             ORDER BY tree_size LIMIT $3",
            "audit_heads",
            &[
                Value::Int(bound(range.start)),
                Value::Int(bound(range.end)),
                Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )
        .await
    }

    async fn numbered(
        &self,
        sql: &str,
        name: &str,
        params: &[Value],
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let params: Vec<_> = params.iter().map(Value::as_sql).collect();
        let rows = self.client().await?.query(sql, &params).await?;
        rows.iter()
            .map(|row| Ok((unsigned(row.try_get(0)?, name)?, row.try_get(1)?)))
            .collect()
    }

    /// Completed rounds in order.
    pub async fn rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        self.records("SELECT round, record FROM rounds ORDER BY round", "rounds")
            .await
    }

    /// Failed attempts in order.
    pub async fn failed_rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        self.records(
            "SELECT round, record FROM failed_rounds ORDER BY round, attempt",
            "failed_rounds",
        )
        .await
    }

    async fn records(&self, sql: &str, name: &str) -> Result<Vec<RoundRecord>, StoreError> {
        self.numbered(sql, name, &[])
            .await?
            .iter()
            .map(|(round, bytes)| decode(&format!("{name}/{round}"), bytes))
            .collect()
    }
}
