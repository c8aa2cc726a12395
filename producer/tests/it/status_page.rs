//! The status page of `serve`, rendered by headless Chromium: all twelve services listed, a
//! drifted one red with its reason. Needs Debian's `chromium` (`.ci/run` installs it); with `CI`
//! set a missing browser fails the test, otherwise it is skipped with a note.

use std::sync::Arc;
use std::time::Duration;

use producer::serve::status_page::{self, StatusPage};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::cli::ALL;
use crate::status::Harness;

/// Serve the page on an ephemeral loopback port until `stop`.
async fn serve_page(h: &Harness, token: Option<&str>, stop: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = status_page::router(Arc::new(StatusPage {
        db: h.pool.clone(),
        packages_dir: h.dir.path().join("packages"),
        token: token.map(|t| SecretString::from(t.to_owned())),
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    format!("http://{addr}")
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|bin| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

async fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--virtual-time-budget=2000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("chromium finished within 60 s")
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<tr>` for one service, as the browser serialised it.
fn row<'a>(dom: &'a str, service: &str) -> &'a str {
    let marker = format!("data-service=\"{service}\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("the page does not list {service}:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[tokio::test]
async fn status_page_in_chromium_lists_every_service_and_shows_drift_red_with_its_reason() {
    let Some(browser) = chromium() else {
        let msg = "chromium is not installed (apt-get install -y chromium); `.ci/run` installs it";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("note: skipped the status page browser test: {msg}");
        return;
    };
    let h = Harness::start(&ALL).await;
    for service in ["grafana", "redmine"] {
        let (code, out) = h.pma(&["fix", service]).await;
        assert_eq!(code, 0, "{out}");
    }
    // Drift: the manifest now wants another redirect path than authentik has.
    let manifest = h.dir.path().join("packages/grafana/manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace(
            "redirect_path: /login/generic_oauth",
            "redirect_path: /login/moved",
        ),
    )
    .expect("manifest");
    for service in ["grafana", "redmine"] {
        h.pma(&["check", service]).await;
    }

    let stop = CancellationToken::new();
    let base = serve_page(&h, None, stop.clone()).await;
    let dom = dump_dom(browser, &format!("{base}/")).await;
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    for service in ALL {
        row(&dom, service);
    }
    let grafana = row(&dom, "grafana");
    assert!(grafana.contains("data-result=\"red\""), "{grafana}");
    assert!(grafana.contains("redirect URI mismatch"), "{grafana}");
    assert!(grafana.contains("href=\"/history/grafana\""), "{grafana}");
    let redmine = row(&dom, "redmine");
    assert!(redmine.contains("data-result=\"green\""), "{redmine}");
    assert!(row(&dom, "zammad").contains("never checked"));
    let env = std::fs::read_to_string(h.dir.path().join(".env")).expect("env");
    let secret = env
        .lines()
        .find_map(|l| l.strip_prefix("GRAFANA_SSO_CLIENT_SECRET="))
        .expect("fix stored grafana's secret");
    assert!(!dom.contains(secret), "no secrets on the page");

    let history = dump_dom(browser, &format!("{base}/history/grafana")).await;
    assert!(history.contains("redirect URI mismatch"), "{history}");
    assert!(history.contains("<td>fix</td>"), "{history}");
    stop.cancel();
    h.finish().await;
}

#[tokio::test]
async fn status_page_with_a_token_wants_it_and_escapes_what_it_shows() {
    let h = Harness::start(&["grafana"]).await;
    sqlx::query(
        "insert into service_state (service, last_status, last_summary, updated_at)
         values ('<b>x</b>', 'error', '<script>alert(1)</script>', now())",
    )
    .execute(&h.pool)
    .await
    .expect("state");
    let stop = CancellationToken::new();
    let base = serve_page(&h, Some("s3cret-token"), stop.clone()).await;
    let http = reqwest::Client::new();
    let res = http.get(format!("{base}/")).send().await.expect("get");
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!("{base}/"))
        .bearer_auth("wrong-token!")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!("{base}/"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    assert!(body.contains("data-service=\"grafana\""), "{body}");
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(!body.contains("<b>x</b>"), "{body}");
    stop.cancel();
    h.finish().await;
}

#[test]
fn status_page_refuses_a_public_address_without_a_token() {
    let get = |addr: &'static str, token: Option<&'static str>| {
        move |k: &str| match k {
            "PMA_SSO_STATUS_ADDR" => Some(addr.to_owned()),
            "PMA_SSO_STATUS_TOKEN" => token.map(str::to_owned),
            _ => None,
        }
    };
    let err = status_page::settings(&get("0.0.0.0:8081", None)).expect_err("public, no token");
    assert!(err.contains("PMA_SSO_STATUS_TOKEN"), "{err}");
    assert!(status_page::settings(&get("0.0.0.0:8081", Some("t"))).is_ok());
    let (addr, token) = status_page::settings(&|_| None).expect("defaults");
    assert_eq!(addr.to_string(), "127.0.0.1:8081");
    assert!(token.is_none());
}
