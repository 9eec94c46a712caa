//! Test support shared by every crate's tests: external tools and throwaway databases.
//!
//! Outside CI a test whose tool is missing is skipped and says why; under `CI=true` nothing is
//! skipped for a missing tool (`.ci/run` installs them), so a missing tool fails the test.

use std::process::Command;

/// True when `CI=true` (or `1`) is set.
pub fn on_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Whether `tool` is on PATH. When it is not: panics on CI, otherwise prints a SKIP line naming
/// the Debian package that provides it and returns false.
pub fn require_tool(tool: &str, debian_package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let msg = format!("`{tool}` is not installed (apt-get install -y {debian_package})");
        if on_ci() {
            panic!("{msg}; CI must not skip this test");
        }
        report_skip(&msg);
    }
    found
}

/// Says why a test is skipped: on stderr (shown by `cargo test --nocapture`) and, because the
/// test harness hides a passing test's output, appended to the file named by
/// `DIALBRIDGE_TEST_SKIP_LOG` when set (`scripts/test` prints that file at the end).
pub fn report_skip(why: &str) {
    eprintln!("SKIP: {why}");
    if let Ok(path) = std::env::var("DIALBRIDGE_TEST_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "SKIP: {why}");
        }
    }
}

/// The PostgreSQL server tests use; `DIALBRIDGE_TEST_PG` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("DIALBRIDGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A PostgreSQL database created for one test and dropped when this value is dropped.
pub struct TempPgDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TempPgDatabase {
    /// Creates a fresh empty database. Returns `None` (after printing why) when PostgreSQL is not
    /// reachable outside CI; panics when it is not reachable on CI.
    pub async fn create() -> Option<Self> {
        sqlx::any::install_default_drivers();
        let admin_url = postgres_admin_url();
        let mut conn = match <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                let msg = format!(
                    "PostgreSQL is unreachable at {}: {e}",
                    crate::db::redact_url(&admin_url)
                );
                if on_ci() {
                    panic!("{msg}; CI must not skip the PostgreSQL tests");
                }
                report_skip(&msg);
                return None;
            }
        };
        let name = format!("dialbridge_test_{}", crate::ids::random_base32(12));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        Some(Self {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }
}

impl Drop for TempPgDatabase {
    fn drop(&mut self) {
        // Drop may run inside or outside a runtime: use a thread with its own small runtime.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}
