//! The active coordinator's lease and its fencing token (issue #20).
//!
//! Several coordinators may point at one database; the one holding the lease
//! is active and the others stand by. A lease expires unless its holder renews
//! it; a standby takes an expired lease over, which adds one to the fencing
//! token. The active coordinator's store is [`PgStore::fenced`] with its token:
//! every write transaction first locks the token's row (`FOR SHARE`) and
//! checks it is still the holder's, so
//!
//! * a takeover waits for the active coordinator's transactions in flight, and
//! * once a takeover has committed, no transaction of the former holder
//!   commits: under SERIALIZABLE its lock of the changed row fails with a
//!   serialization error, and the retry reads the new token and stops with
//!   [`StoreError::Fenced`].
//!
//! This is the fencing token of Chubby's sequencers (Burrows, "The Chubby lock
//! service for loosely-coupled distributed systems", OSDI 2006, §2.4) checked
//! by the storage itself, as Kleppmann argues a lease needs ("How to do
//! distributed locking", 2016): a lease alone cannot stop a holder that was
//! paused (GC, SIGSTOP, a frozen VM) past its expiry from writing afterwards.
//!
//! Time is the database's (`clock_timestamp()`): the coordinators' clocks
//! need not agree. Threat model: coordinators fail by crashing, pausing or
//! losing their network for any length of time, not by lying; they share the
//! database (trusted, as the store is) and the federation's signing key.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::{PgStore, unsigned};
use crate::store::StoreError;

/// The number of a lease holding: one more at every takeover. Writes fenced
/// with a token commit only while it is the lease's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FencingToken(pub(super) i64);

impl FencingToken {
    /// The token as stored.
    pub fn get(self) -> u64 {
        self.0.unsigned_abs()
    }
}

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The lease as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The current holding's token (0: never taken).
    pub token: FencingToken,
    /// Who took it (the holder's own description: host, address, process).
    pub holder: String,
    /// Whether it has expired: a standby may take it over.
    pub expired: bool,
}

/// The lease's length as PostgreSQL's interval, in milliseconds.
fn millis(ttl: Duration) -> Result<f64, StoreError> {
    let ms = ttl.as_millis();
    if ms == 0 || ms > u128::from(u32::MAX) {
        return Err(StoreError::PostgresConfig {
            reason: format!("a lease of {ttl:?} is out of range"),
        });
    }
    Ok(ms as f64)
}

impl PgStore {
    /// This store with every write fenced by `token`: from the moment another
    /// coordinator takes the lease over, its writes fail with
    /// [`StoreError::Fenced`] and change nothing. Its copy of the tainted
    /// versions is a new one, read on first use: what a standby may have
    /// read before it took over predates the former leader's last erasures.
    pub fn fenced(&self, token: FencingToken) -> Self {
        Self {
            pool: self.pool.clone(),
            fence: Some(token),
            taints: std::sync::Arc::default(),
        }
    }

    /// Takes the lease for `ttl` if it has expired (or was never taken), as
    /// `holder`; `None` while another coordinator holds it. Two coordinators
    /// trying at once: one gets it, the other waits for its commit and then
    /// finds it held.
    pub async fn take_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<FencingToken>, StoreError> {
        let ttl = millis(ttl)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        match Self::try_take(&tx, holder, ttl).await {
            Ok(Some(token)) => {
                tx.commit().await?;
                Ok(Some(token))
            }
            Ok(None) => Ok(None),
            // The holder is mid-commit (its transactions lock the token's
            // row; one stalled is ended by the server after
            // IDLE_IN_TRANSACTION_MS), or another standby is taking it: held
            // for now. This try gives up instead of queueing behind it.
            Err(e) if is_contention(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Inside `tx`: takes the lease if it has expired.
    async fn try_take(
        tx: &tokio_postgres::Transaction<'_>,
        holder: &str,
        ttl: f64,
    ) -> Result<Option<FencingToken>, tokio_postgres::Error> {
        // A standby paused while it holds the expiry row's lock must not
        // block the holder's renewals: the server ends its transaction.
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}; {}",
            (ttl / 3.0).ceil(),
            super::limit_idle()
        ))
        .await?;
        let expired: bool = tx
            .query_one(
                "SELECT expires_at < clock_timestamp() FROM coordinator_lease_expiry \
                 WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?
            .try_get(0)?;
        if !expired {
            return Ok(None);
        }
        let token: i64 = tx
            .query_one(
                "UPDATE coordinator_lease SET token = token + 1, holder = $1 \
                 WHERE id = 1 RETURNING token",
                &[&holder],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "UPDATE coordinator_lease_expiry SET token = $1, \
             expires_at = clock_timestamp() + $2 * interval '1 millisecond' WHERE id = 1",
            &[&token, &ttl],
        )
        .await?;
        Ok(Some(FencingToken(token)))
    }

    /// Extends the lease held with `token` by `ttl` from now; `false` if it
    /// has been taken over (an expired lease nobody took is renewed: the
    /// token is still the current one).
    pub async fn renew_lease(
        &self,
        token: FencingToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl = millis(ttl)?;
        let renewed = self
            .client()
            .await?
            .execute(
                "UPDATE coordinator_lease_expiry \
                 SET expires_at = clock_timestamp() + $2 * interval '1 millisecond' \
                 WHERE id = 1 AND token = $1",
                &[&token.0, &ttl],
            )
            .await?;
        Ok(renewed == 1)
    }

    /// Gives the lease held with `token` up at once, so that a standby takes
    /// over without waiting for it to expire; nothing if it was taken over.
    pub async fn release_lease(&self, token: FencingToken) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE coordinator_lease_expiry SET expires_at = '-infinity' \
                 WHERE id = 1 AND token = $1",
                &[&token.0],
            )
            .await?;
        Ok(())
    }

    /// The lease as it stands.
    pub async fn lease(&self) -> Result<LeaseState, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT l.token, l.holder, e.expires_at < clock_timestamp() \
                 FROM coordinator_lease l JOIN coordinator_lease_expiry e ON e.id = l.id",
                &[],
            )
            .await?;
        let token: i64 = row.try_get(0)?;
        unsigned(token, "coordinator_lease")?;
        Ok(LeaseState {
            token: FencingToken(token),
            holder: row.try_get(1)?,
            expired: row.try_get(2)?,
        })
    }
}

/// Whether a lease statement failed only because another transaction holds
/// the rows (a lock timeout, a serialization conflict, a deadlock).
fn is_contention(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) || super::is_serialization_failure(error)
}

/// Inside a write transaction: locks the token's row and checks it is still
/// `fence`'s (nothing to check for an unfenced store). Returns the current
/// token when it is not.
///
/// The same statement limits how long this transaction may sit idle (see
/// [`super::IDLE_IN_TRANSACTION_MS`]): a holder paused mid-commit keeps the
/// token's row locked, and the server ends its session so that the takeover
/// goes on. Set per transaction, not per connection, so that it holds behind
/// a connection pooler too.
pub(super) async fn check_fence(
    tx: &tokio_postgres::Transaction<'_>,
    fence: Option<FencingToken>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let Some(FencingToken(mine)) = fence else {
        return Ok(None);
    };
    let current: i64 = tx
        .query_one(
            "SELECT token FROM coordinator_lease, \
             set_config('idle_in_transaction_session_timeout', $1, true) \
             WHERE id = 1 FOR SHARE OF coordinator_lease",
            &[&super::IDLE_IN_TRANSACTION_MS.to_string()],
        )
        .await?
        .try_get(0)?;
    Ok((current != mine).then_some(current))
}
