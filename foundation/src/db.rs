//! The database handle, its migrations, and the dialect differences.
//!
//! One `sqlx::AnyPool` serves both backends: SQLite (a file under the data directory, the embedded
//! default) and PostgreSQL (`postgres://…`, the multi-node mode). Every query in the project is
//! written once, in portable SQL with `$1, $2…` placeholders, and decodes only what the Any driver
//! can: integers, floats, text and bytes. So the schema stores times as BIGINT epoch milliseconds,
//! flags as SMALLINT 0/1, JSON as TEXT and keys as BIGINT.
//!
//! The few statements that differ between the dialects live in this file and nowhere else:
//! connection pragmas, write-transaction start, and the server clock.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            bail!("unsupported database URL {:?}: use sqlite://PATH or postgres://…", redact_url(url))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The shared database handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time. Queueing our own writers here, in order, instead of letting
    /// them spin in SQLite's busy handler (which sleeps up to 100 ms per retry) keeps write latency
    /// flat under contention. Other processes on the same file still wait on `busy_timeout`.
    write_lane: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// A write transaction (see [`Db::begin_write`]). Derefs to the sqlx transaction; commit or roll
/// back explicitly, dropping it rolls back.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _lane: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// The connection to run statements on: `sqlx::query(..).execute(tx.conn())`.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> anyhow::Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Db {
    /// Connects (creating the SQLite file if it does not exist yet). Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("bad database URL {}", redact_url(&url)))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; busy_timeout makes a writer
                        // wait for the lock instead of failing at once.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database at {}", redact_url(&url)))?;
        let write_lane = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Self { pool, backend, write_lane })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations; safe to run from several nodes at once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("database migration failed")?;
        Ok(())
    }

    /// Number of migrations this binary carries (for `migrate` output and tests).
    pub fn known_migrations(&self) -> usize {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres => POSTGRES_MIGRATIONS.iter().count(),
        }
    }

    /// How many migrations this database has applied (fails on a database that is not ours).
    pub async fn applied_migrations(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&self.pool).await?)
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it waits for this process's write lane,
    /// then takes the database write lock up front (`BEGIN IMMEDIATE`), so a transaction never
    /// fails when it would upgrade a read lock.
    pub async fn begin_write(&self) -> anyhow::Result<WriteTx> {
        let lane = match &self.write_lane {
            Some(lane) => Some(lane.clone().lock_owned().await),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _lane: lane })
    }

    /// The row-locking suffix for a `SELECT … LIMIT 1` that picks a row to claim inside a write
    /// transaction: PostgreSQL locks the row and lets concurrent claimers skip it; SQLite needs
    /// nothing, since a write transaction already excludes every other writer.
    pub fn claim_lock_suffix(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// True when `err` is a unique-constraint violation (both dialects).
    pub fn is_unique_violation(err: &anyhow::Error) -> bool {
        err.downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .is_some_and(|e| e.is_unique_violation())
    }

    /// The database server's clock in epoch milliseconds, or `None` where the database has no
    /// server (SQLite: the local clock is the only clock).
    pub async fn server_time_ms(&self) -> anyhow::Result<Option<i64>> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let ms: i64 = sqlx::query_scalar(
                    "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(Some(ms))
            }
        }
    }

    /// Writes a consistent copy of the whole database to `path` while it is in use (SQLite's
    /// `VACUUM INTO`). PostgreSQL has its own tools for this; the error says which.
    pub async fn backup_to(&self, path: &std::path::Path) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                if path.exists() {
                    bail!("{} exists; choose a new file name", path.display());
                }
                sqlx::query("VACUUM INTO $1")
                    .bind(path.to_string_lossy().into_owned())
                    .execute(&self.pool)
                    .await
                    .with_context(|| format!("backing up to {}", path.display()))?;
                Ok(())
            }
            Backend::Postgres => bail!(
                "on PostgreSQL, back up with `pg_dump -Fc -f FILE DBNAME` and restore with \
                 `pg_restore --clean -d DBNAME FILE` (see deploy/README.md)"
            ),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(Backend::from_url("sqlite://data/x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::from_url("postgresql://u@h/db").unwrap(), Backend::Postgres);
        let err = Backend::from_url("mysql://root:pw@h/db").unwrap_err().to_string();
        assert!(err.contains("unsupported") && !err.contains("pw"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
