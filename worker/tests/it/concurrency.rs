use worker::Action;

use crate::support::Platform;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_for_different_services_keep_every_key_in_env() {
    let services = [
        "redmine",
        "mattermost",
        "linkding",
        "grafana",
        "n8n",
        "superset",
        "nextcloud",
        "gitea",
    ];
    let p = Platform::with_env(
        &services,
        "# platform secrets\nDOMAIN=example.org\nUNRELATED=keep-me\n",
    )
    .await;
    let ctx = &p.ctx;
    let results = futures_join_all(services.iter().map(|s| ctx.apply(s, Action::Add))).await;
    for (service, result) in services.iter().zip(results) {
        result.unwrap_or_else(|e| panic!("{service}: {e}"));
    }
    let text = p.env_text();
    assert!(
        text.starts_with("# platform secrets\nDOMAIN=example.org\nUNRELATED=keep-me\n"),
        "{text}"
    );
    for service in services {
        let prefix = service.to_uppercase();
        let provider = p
            .sim
            .provider_by_name(&format!("pma-sso-{service}"))
            .expect("provider");
        assert_eq!(
            p.env_value(&format!("{prefix}_SSO_CLIENT_ID")).as_deref(),
            provider["client_id"].as_str(),
            "{service}"
        );
        assert_eq!(
            p.env_value(&format!("{prefix}_SSO_CLIENT_SECRET"))
                .as_deref(),
            provider["client_secret"].as_str(),
            "{service}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(p.dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::with_capacity(handles.len());
    // Poll them concurrently on this task.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, fut) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}
