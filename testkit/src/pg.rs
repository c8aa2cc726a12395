//! A PostgreSQL database of its own for one test, on the machine's server, dropped when the
//! test ends — even when it fails.

use sqlx::Connection;

pub struct TestDb {
    pub url: String,
    admin: String,
    name: String,
}

/// The admin URL: `PMA_SSO_TEST_DATABASE_URL`, else user `postgres` or `root` on 127.0.0.1.
async fn admin_url() -> String {
    if let Ok(url) = std::env::var("PMA_SSO_TEST_DATABASE_URL") {
        return url;
    }
    for user in ["postgres", "root"] {
        let url = format!("postgres://{user}@127.0.0.1:5432/postgres");
        if sqlx::PgConnection::connect(&url).await.is_ok() {
            return url;
        }
    }
    panic!(
        "no PostgreSQL on 127.0.0.1:5432 for user postgres or root (set PMA_SSO_TEST_DATABASE_URL)"
    );
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = admin_url().await;
        let suffix: [u8; 12] = rand::random();
        let name = format!(
            "pma_sso_t_{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("admin connection");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("the admin URL names no database"),
        };
        TestDb { url, admin, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot await; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "drop database if exists {name} with (force)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}
