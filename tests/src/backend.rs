//! Where a test federation keeps its state: the sled folder (the default) or
//! a database on a scratch PostgreSQL server (issue #20: the restart and crash
//! tests run on both). One server per test, stopped when the test's
//! [`ScratchDatabase`] drops.

use std::path::{Path, PathBuf};

use cohort_coordinator::store::postgres::scratch::ScratchServer;
use cohort_coordinator::store::{PostgresSettings, Store, StoreLocation};

/// A fresh database on a scratch PostgreSQL server of its own.
#[derive(Debug)]
pub struct ScratchDatabase {
    _server: ScratchServer,
    /// The coordinator's `[server] store` for it.
    pub settings: PostgresSettings,
}

impl ScratchDatabase {
    /// Starts the server and creates the database; `None` only when
    /// PostgreSQL is missing and `COHORT_SKIP_POSTGRES=1` asked for the skip
    /// (printed), else a missing PostgreSQL fails the test.
    pub fn start() -> Option<Self> {
        let server = ScratchServer::start().expect("a scratch PostgreSQL server")?;
        let settings = server.database("federation").expect("a scratch database");
        Some(Self {
            _server: server,
            settings,
        })
    }
}

/// Where the state of a coordinator with the state folder `state` is: the
/// database when there is one, else the folder.
pub fn location(database: Option<&ScratchDatabase>, state: &Path) -> StoreLocation {
    match database {
        Some(database) => StoreLocation::Postgres(database.settings.clone()),
        None => StoreLocation::Folder(state.to_owned()),
    }
}

/// The store at [`location`] (the coordinator stopped, for sled).
pub async fn open(database: Option<&ScratchDatabase>, state: &Path) -> Store {
    Store::open(&location(database, state))
        .await
        .expect("the state store opens")
}

/// The arguments that point an offline `cohort-coordinator` command at the
/// state: `--state FOLDER`, and `--postgres URL` with a database (the folder
/// still gives the audit key).
pub fn state_args(database: Option<&ScratchDatabase>, state: &Path) -> Vec<String> {
    let mut args = vec!["--state".to_owned(), folder(state)];
    if let Some(database) = database {
        args.extend(["--postgres".to_owned(), database.settings.postgres.clone()]);
    }
    args
}

fn folder(state: &Path) -> String {
    PathBuf::from(state).to_string_lossy().into_owned()
}
