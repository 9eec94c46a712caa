//! A minimal safe wrapper over the SQLite C API (`libsqlite3-sys`, the same bundled library sqlx
//! links), for the one place where sqlx's per-value cost dominates: the bulk import writer
//! ([`crate::sqlite_bulk`]). Nothing else should use it.
//!
//! Why: through sqlx every bound value is an owned Rust value in an argument vector, copied again
//! by SQLite (`SQLITE_TRANSIENT`) and freed twice; at 1,000,000 rows that was ~7 of 18 CPU seconds
//! of an import. Here [`Statement::execute`] binds borrowed text with `SQLITE_STATIC` and runs the
//! statement inside one call: it binds, steps to completion, then resets the statement and clears
//! its bindings before returning, so no pointer to the borrowed values outlives the borrow. That
//! is the whole safety argument, together with: a [`Connection`] is used by one thread at a time
//! (`Send` but not `Sync`; statements borrow it, so it cannot move while one exists), and a
//! [`Statement`] is finalized before its connection closes (the borrow again).

use std::ffi::{CStr, CString, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

/// One value to bind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

/// An open SQLite connection (closed on drop).
pub(crate) struct Connection {
    db: NonNull<ffi::sqlite3>,
}

// SAFETY: the connection is opened in SQLite's multi-thread mode (SQLITE_OPEN_NOMUTEX on a
// threadsafe build), in which a connection may move between threads as long as one thread uses it
// at a time. Moving it needs ownership, so no Statement (which borrows it) is alive then; and the
// type is not `Sync`, so neither it nor its statements are shared between threads.
unsafe impl Send for Connection {}

impl Connection {
    /// Opens an existing database file read-write (it is never created here).
    pub(crate) fn open(path: &str) -> anyhow::Result<Self> {
        let c_path = CString::new(path)?;
        let mut db: *mut ffi::sqlite3 = ptr::null_mut();
        // SAFETY: valid NUL-terminated path, out-pointer to a local.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let Some(db) = NonNull::new(db) else {
            anyhow::bail!("opening the SQLite file {path}: out of memory");
        };
        let conn = Self { db };
        if rc != ffi::SQLITE_OK {
            anyhow::bail!("opening the SQLite file {path}: {}", conn.error());
        }
        Ok(conn)
    }

    /// The connection's last error message.
    fn error(&self) -> String {
        // SAFETY: the handle is open; sqlite3_errmsg returns a NUL-terminated string owned by
        // SQLite, copied out at once.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }

    /// Runs one or more statements that bind nothing and return nothing (pragmas, BEGIN, COMMIT).
    pub(crate) fn exec(&mut self, sql: &str) -> anyhow::Result<()> {
        let c_sql = CString::new(sql)?;
        // SAFETY: open handle, NUL-terminated SQL, no callback, no error out-pointer.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                c_sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            anyhow::bail!("{sql}: {}", self.error());
        }
        Ok(())
    }

    /// Prepares one statement (for repeated use: SQLITE_PREPARE_PERSISTENT).
    pub(crate) fn prepare(&self, sql: &str) -> anyhow::Result<Statement<'_>> {
        let len = c_int::try_from(sql.len())?;
        let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
        // SAFETY: open handle; `sql` is valid for `len` bytes (no NUL needed when the length is
        // given); out-pointers to locals.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            anyhow::bail!("preparing {}: {}", head(sql), self.error());
        }
        let raw = NonNull::new(stmt)
            .ok_or_else(|| anyhow::anyhow!("preparing {}: no statement in the text", head(sql)))?;
        // SAFETY: a prepared statement.
        let params = unsafe { ffi::sqlite3_bind_parameter_count(raw.as_ptr()) } as usize;
        Ok(Statement {
            raw,
            db: self.db,
            params,
            _conn: PhantomData,
        })
    }

    /// The first column of the first row of a query that binds nothing, as an integer.
    pub(crate) fn query_i64(&mut self, sql: &str) -> anyhow::Result<i64> {
        let stmt = self.prepare(sql)?;
        let raw = stmt.raw.as_ptr();
        // SAFETY: a prepared statement with nothing to bind; the column is read while the row is
        // current, and the statement is finalized by its drop.
        unsafe {
            match ffi::sqlite3_step(raw) {
                ffi::SQLITE_ROW => Ok(ffi::sqlite3_column_int64(raw, 0)),
                ffi::SQLITE_DONE => anyhow::bail!("{}: no row", head(sql)),
                _ => anyhow::bail!("{}: {}", head(sql), stmt.error()),
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: every Statement borrowed the connection and has been finalized (dropped) by
        // now, so the close succeeds; closing rolls back an open transaction.
        unsafe {
            ffi::sqlite3_close(self.db.as_ptr());
        }
    }
}

/// A prepared statement of its connection (finalized on drop).
pub(crate) struct Statement<'c> {
    raw: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    params: usize,
    _conn: PhantomData<&'c Connection>,
}

impl Statement<'_> {
    fn error(&self) -> String {
        // SAFETY: as Connection::error; the connection outlives the statement.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }

    /// Binds `values` to the parameters in order (exactly as many as the statement has), runs it
    /// to completion (rows it returns are skipped), then resets it and clears its bindings.
    pub(crate) fn execute(&mut self, values: &[Value<'_>]) -> anyhow::Result<()> {
        anyhow::ensure!(
            values.len() == self.params,
            "{} values for a statement of {} parameters",
            values.len(),
            self.params
        );
        let raw = self.raw.as_ptr();
        let mut result = Ok(());
        for (i, v) in values.iter().enumerate() {
            let idx = (i + 1) as c_int;
            // SAFETY: a prepared statement and an index within its parameter count. Text is
            // bound as SQLITE_STATIC: it stays borrowed (and unchanged) for this whole call, and
            // the bindings are cleared below before the call returns.
            let rc = unsafe {
                match *v {
                    Value::Null => ffi::sqlite3_bind_null(raw, idx),
                    Value::Int(n) => ffi::sqlite3_bind_int64(raw, idx, n),
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        raw,
                        idx,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                result = Err(anyhow::anyhow!("binding value {idx}: {}", self.error()));
                break;
            }
        }
        if result.is_ok() {
            loop {
                // SAFETY: a prepared, fully bound statement.
                match unsafe { ffi::sqlite3_step(raw) } {
                    ffi::SQLITE_ROW => continue,
                    ffi::SQLITE_DONE => break,
                    _ => {
                        result = Err(anyhow::anyhow!("{}", self.error()));
                        break;
                    }
                }
            }
        }
        // SAFETY: a prepared statement; after this no binding refers to `values`.
        unsafe {
            ffi::sqlite3_reset(raw);
            ffi::sqlite3_clear_bindings(raw);
        }
        result
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a connection that is still open (borrowed).
        unsafe {
            ffi::sqlite3_finalize(self.raw.as_ptr());
        }
    }
}

/// The start of a statement, for error messages.
fn head(sql: &str) -> &str {
    let end = sql
        .char_indices()
        .nth(60)
        .map(|(i, _)| i)
        .unwrap_or(sql.len());
    &sql[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_runs_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        // The file must exist: open never creates one.
        assert!(Connection::open(path.to_str().unwrap()).is_err());
        std::fs::File::create(&path).unwrap();
        let mut c = Connection::open(path.to_str().unwrap()).unwrap();
        c.exec("CREATE TABLE t (a INTEGER, b TEXT NOT NULL, c TEXT)")
            .unwrap();
        {
            let mut s = c
                .prepare("INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)")
                .unwrap();
            let owned = String::from("zwei");
            s.execute(&[
                Value::Int(1),
                Value::Text("eins"),
                Value::Null,
                Value::Int(2),
                Value::Text(&owned),
                Value::Text("é\"'"),
            ])
            .unwrap();
            drop(owned);
            let err = s.execute(&[Value::Int(1)]).unwrap_err();
            assert!(
                err.to_string().contains("1 values for a statement of 6"),
                "{err}"
            );
            let err = s
                .execute(&[
                    Value::Int(3),
                    Value::Null,
                    Value::Null,
                    Value::Int(4),
                    Value::Text("x"),
                    Value::Null,
                ])
                .unwrap_err();
            assert!(err.to_string().contains("NOT NULL"), "{err}");
        }
        assert_eq!(c.query_i64("SELECT COUNT(*) FROM t").unwrap(), 2);
        assert_eq!(
            c.query_i64("SELECT a FROM t WHERE b = 'zwei' AND c = 'é\"'''")
                .unwrap(),
            2
        );
        let err = c.prepare("INSERT INTO nope VALUES (1)").err().unwrap();
        assert!(err.to_string().contains("no such table: nope"), "{err}");
        assert!(c.exec("BEGIN; COMMIT; ROLLBACK").is_err());
    }
}
