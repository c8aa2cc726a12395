//! The status page of `serve`, rendered by headless Chromium: all twelve services listed, a
//! drifted one red with its reason. Needs Debian's `chromium` (`.ci/run` installs it); with `CI`
//! set a missing browser fails the test, otherwise it is skipped with a note.

use std::sync::Arc;
use std::time::Duration;

use producer::serve::status_page::{self, StatusPage};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use worker::pipeline::client::JobClient;

use crate::cli::ALL;
use crate::status::Harness;

/// Serve the page on an ephemeral loopback port until `stop`.
async fn serve_page(h: &Harness, token: Option<&str>, stop: CancellationToken) -> String {
    serve_page_with(h, token, None, stop).await
}

/// The same, reading queue depths and live workers through `broker`, with a sweep every 15
/// minutes.
async fn serve_page_with(
    h: &Harness,
    token: Option<&str>,
    broker: Option<Arc<JobClient>>,
    stop: CancellationToken,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = status_page::router(Arc::new(StatusPage {
        db: h.pool.clone(),
        packages_dir: h.dir.path().join("packages"),
        token: token.map(|t| SecretString::from(t.to_owned())),
        sweep_cron: broker
            .is_some()
            .then(|| producer::serve::parse_cron("*/15 * * * *").expect("cron")),
        broker,
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

async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body")
}

/// The browser, or `None` after a note (a failure under `CI`).
fn chromium_or_skip() -> Option<&'static str> {
    let browser = chromium();
    if browser.is_none() {
        let msg = "chromium is not installed (apt-get install -y chromium); `.ci/run` installs it";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("note: skipped the status page browser test: {msg}");
    }
    browser
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
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let h = Harness::start(&ALL).await;
    fixed_then_grafana_moved(&h, &["grafana", "redmine"]).await;
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
         values ('grafana', 'error', '<script>alert(1)</script>', now()),
                ('<b>x</b>', 'error', 'a ghost', now())",
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
    assert!(
        !body.contains("a ghost"),
        "state without a manifest is not shown: {body}"
    );
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

/// `fix` for each of `services`, then drift: grafana's manifest now wants another redirect
/// path than authentik has.
async fn fixed_then_grafana_moved(h: &Harness, services: &[&str]) {
    for service in services {
        let (code, out) = h.pma(&["fix", service]).await;
        assert_eq!(code, 0, "{out}");
    }
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
}

/// Three services fixed, grafana drifted and found red by three sweeps, uptime-kuma's login
/// path unverified: the state an operator's page is in on a bad day.
async fn bad_day() -> Harness {
    let h = Harness::start(&["grafana", "redmine", "uptime-kuma"]).await;
    fixed_then_grafana_moved(&h, &["grafana", "redmine", "uptime-kuma"]).await;
    for _ in 0..3 {
        let (code, out) = h.pma(&["sweep"]).await;
        assert_eq!(code, 1, "{out}");
    }
    let (code, out) = h.pma(&["verify", "uptime-kuma"]).await;
    assert_eq!(code, 0, "{out}");
    h
}

#[tokio::test]
async fn metrics_export_each_services_state_red_sweeps_the_last_sweep_jobs_and_live_workers() {
    let h = bad_day().await;
    let broker = Arc::new(JobClient::connect(&h.pipeline).await.expect("broker"));
    let stop = CancellationToken::new();
    let base = serve_page_with(&h, None, Some(broker), stop.clone()).await;
    let text = scrape(&base).await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value("pma_sso_service_state{service=\"grafana\",state=\"red\"}"),
        1.0
    );
    assert_eq!(
        value("pma_sso_service_state{service=\"grafana\",state=\"green\"}"),
        0.0
    );
    assert_eq!(
        value("pma_sso_service_state{service=\"redmine\",state=\"green\"}"),
        1.0
    );
    assert_eq!(
        value("pma_sso_service_state{service=\"uptime-kuma\",state=\"unverified\"}"),
        1.0
    );
    assert_eq!(
        value("pma_sso_service_red_sweeps{service=\"grafana\"}"),
        3.0
    );
    assert_eq!(
        value("pma_sso_service_red_sweeps{service=\"redmine\"}"),
        0.0
    );
    assert!(value("pma_sso_service_last_check_timestamp_seconds{service=\"grafana\"}") > 1.7e9);
    assert!(value("pma_sso_service_last_change_timestamp_seconds{service=\"grafana\"}") > 1.7e9);
    assert!(value("pma_sso_sweep_last_timestamp_seconds") > 1.7e9);
    assert_eq!(value("pma_sso_sweep_last_success"), 1.0);
    assert_eq!(value("pma_sso_sweep_services{result=\"drifted\"}"), 1.0);
    assert_eq!(value("pma_sso_sweep_interval_seconds"), 900.0);
    assert_eq!(value("pma_sso_jobs{status=\"dead\"}"), 0.0);
    assert_eq!(value("pma_sso_jobs_dead_unretried"), 0.0);
    assert_eq!(value("pma_sso_broker_up"), 1.0);
    assert_eq!(value("pma_sso_workers"), 1.0);
    assert_eq!(value("pma_sso_queue_messages{queue=\"dead\"}"), 0.0);

    // A removed service's series go with its manifest.
    h.remove_package("redmine");
    let text = scrape(&base).await;
    assert!(!text.contains("service=\"redmine\""), "{text}");
    stop.cancel();
    h.finish().await;
}

#[tokio::test]
async fn status_page_in_chromium_shows_counts_the_sweep_workers_commands_and_collapsed_history() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let h = bad_day().await;
    let broker = Arc::new(JobClient::connect(&h.pipeline).await.expect("broker"));
    let stop = CancellationToken::new();
    let base = serve_page_with(&h, None, Some(broker), stop.clone()).await;
    let dom = dump_dom(browser, &format!("{base}/")).await;
    for (state, n) in [("green", 1), ("red", 1), ("error", 0), ("unverified", 1)] {
        assert!(
            dom.contains(&format!("data-count=\"{state}\">{n} {state}</span>")),
            "{state}: {dom}"
        );
    }
    assert!(
        dom.contains("Last sweep: <span class=\"red\">red</span>, 20"),
        "{dom}"
    );
    assert!(
        dom.contains("swept 3 services: 2 in sync, 1 drifted, 0 errors"),
        "{dom}"
    );
    assert!(dom.contains("Next sweep: 20"), "{dom}");
    assert!(dom.contains("1 worker alive"), "{dom}");
    assert!(
        dom.contains("0 queued, 0 running, 0 retrying, 0 dead"),
        "{dom}"
    );
    assert!(dom.contains("name=\"viewport\""), "readable on a phone");
    let grafana = row(&dom, "grafana");
    assert!(grafana.contains(">oidc</td>"), "{grafana}");
    assert!(grafana.contains("redirect URI mismatch"), "{grafana}");
    assert!(
        grafana.contains("<code>pma-sso plan grafana</code> then <code>pma-sso fix grafana</code>"),
        "{grafana}"
    );
    assert!(!row(&dom, "grafana").contains("changed never"), "{grafana}");
    let kuma = row(&dom, "uptime-kuma");
    assert!(kuma.contains("data-result=\"unverified\""), "{kuma}");
    assert!(
        kuma.contains("not probed: no outpost URL configured"),
        "{kuma}"
    );

    // Three identical sweep checks are one row with a count; the CLI's fix stays its own row.
    let history = dump_dom(browser, &format!("{base}/history/grafana")).await;
    assert!(history.contains("data-count=\"3\""), "{history}");
    assert!(history.contains("×3 since 20"), "{history}");
    assert!(history.contains("<td>fix</td>"), "{history}");

    // Screenshots for the docs: PMA_SSO_SCREENSHOTS=<dir> writes them there.
    if let Some(dir) = std::env::var_os("PMA_SSO_SCREENSHOTS") {
        for (name, path, size) in [
            ("status-page.png", "/", "1280,720"),
            ("status-page-phone.png", "/", "390,1100"),
            ("history-page.png", "/history/grafana", "1280,720"),
        ] {
            screenshot(
                browser,
                &format!("{base}{path}"),
                size,
                &std::path::Path::new(&dir).join(name),
            )
            .await;
        }
    }
    stop.cancel();
    h.finish().await;
}

async fn screenshot(browser: &str, url: &str, size: &str, to: &std::path::Path) {
    let profile = tempfile::tempdir().expect("profile");
    let out = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", to.display()))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
