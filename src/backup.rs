//! `dialbridge backup` and `restore` for the embedded SQLite database, and the data-directory lock
//! that keeps two appliances (or a restore) from using one database file at once.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use foundation::{Backend, Db};

use crate::config::Config;

const LOCK_FILE: &str = "dialbridge.lock";

/// An exclusive lock on the data directory, held for as long as the value lives.
pub struct DataDirLock {
    _file: File,
}

/// Locks the data directory (SQLite mode), failing when another process holds it.
pub fn lock_data_dir(cfg: &Config) -> anyhow::Result<Option<DataDirLock>> {
    if Backend::from_url(&cfg.database_url())? != Backend::Sqlite {
        return Ok(None);
    }
    std::fs::create_dir_all(&cfg.data_dir)?;
    let path = cfg.data_dir.join(LOCK_FILE);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(DataDirLock { _file: file })),
        Err(_) => bail!(
            "another dialbridge process is using the data directory {} (its lock {} is held)",
            cfg.data_dir.display(),
            path.display()
        ),
    }
}

pub async fn backup(cfg: &Config, to: &Path) -> anyhow::Result<()> {
    let db = crate::serve::open_database(cfg).await?;
    db.backup_to(to).await?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backed up {} to {} ({size} bytes)",
        foundation::db::redact_url(&cfg.database_url()),
        to.display()
    );
    Ok(())
}

/// Replaces the SQLite database with `from`. The appliance must be stopped (the data-directory
/// lock says so); the database being replaced is kept beside it.
pub async fn restore(cfg: &Config, from: &Path) -> anyhow::Result<()> {
    let url = cfg.database_url();
    if Backend::from_url(&url)? != Backend::Sqlite {
        bail!(
            "on PostgreSQL, restore with `pg_restore --clean -d DBNAME FILE` (see deploy/README.md)"
        );
    }
    let _lock = lock_data_dir(cfg).context("stop the appliance before restoring")?;
    // Check a copy of the backup is a Dialbridge database before touching the current one.
    let target = cfg.data_dir.join("dialbridge.db");
    let tmp = cfg.data_dir.join("dialbridge.db.restoring");
    std::fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    let checked = async {
        let check = Db::connect(&format!("sqlite://{}", tmp.display()), 1).await?;
        let n = check.applied_migrations().await;
        check.close().await;
        n
    }
    .await;
    for ext in ["restoring-wal", "restoring-shm"] {
        let _ = std::fs::remove_file(cfg.data_dir.join(format!("dialbridge.db.{ext}")));
    }
    let migrations = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("{} is not a Dialbridge backup", from.display())));
        }
    };
    let mut kept: Option<PathBuf> = None;
    if target.exists() {
        let aside = cfg
            .data_dir
            .join(format!("dialbridge.db.before-restore-{}", chrono_stamp()));
        std::fs::rename(&target, &aside)?;
        kept = Some(aside);
    }
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(cfg.data_dir.join(format!("dialbridge.{ext}")));
    }
    std::fs::rename(&tmp, &target)?;
    let db = crate::serve::open_database(cfg).await?;
    db.migrate().await?;
    db.close().await;
    eprintln!(
        "restored {} ({migrations} migrations applied in the backup){}",
        from.display(),
        kept.map(|k| format!("; the previous database is kept as {}", k.display()))
            .unwrap_or_default()
    );
    Ok(())
}

fn chrono_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
}
