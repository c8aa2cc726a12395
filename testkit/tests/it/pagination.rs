use reqwest::StatusCode;
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn pagination_over_250_objects_clamps_page_size_to_100() {
    let api = Api::start().await;
    for i in 0..250 {
        let (status, _) = api
            .post(
                "/core/applications/",
                json!({"name": format!("App {i:03}"), "slug": format!("app-{i:03}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    let (_, first) = api.get("/core/applications/?page_size=500").await;
    assert_eq!(
        first["pagination"],
        json!({"next": 2, "previous": 0, "count": 250, "current": 1, "total_pages": 3, "start_index": 1, "end_index": 100})
    );
    assert_eq!(first["results"].as_array().map(Vec::len), Some(100));
    assert_eq!(first["results"][0]["slug"], "app-000");
    assert_eq!(first["autocomplete"], json!({}));

    let (_, last) = api.get("/core/applications/?page_size=500&page=3").await;
    assert_eq!(
        last["pagination"],
        json!({"next": 0, "previous": 2, "count": 250, "current": 3, "total_pages": 3, "start_index": 201, "end_index": 250})
    );
    assert_eq!(last["results"].as_array().map(Vec::len), Some(50));
    assert_eq!(last["results"][49]["slug"], "app-249");

    let (status, body) = api.get("/core/applications/?page_size=500&page=4").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Invalid page."}));

    let (_, default) = api.get("/core/applications/").await;
    assert_eq!(default["results"].as_array().map(Vec::len), Some(20));
    assert_eq!(default["pagination"]["total_pages"], 13);
}

#[tokio::test]
async fn filters_are_exact_and_unknown_parameters_are_ignored() {
    let api = Api::start().await;
    for (name, slug) in [
        ("Grafana", "grafana"),
        ("Grafana Staging", "grafana-staging"),
    ] {
        api.post("/core/applications/", json!({"name": name, "slug": slug}))
            .await;
    }
    let (_, one) = api
        .get("/core/applications/?slug=grafana&superuser_full_list=true&no_such_filter=1")
        .await;
    assert_eq!(one["pagination"]["count"], 1);
    assert_eq!(one["results"][0]["slug"], "grafana");

    let (_, searched) = api.get("/core/applications/?search=staging").await;
    assert_eq!(searched["pagination"]["count"], 1);

    let (_, ordered) = api.get("/core/applications/?ordering=-name").await;
    assert_eq!(ordered["results"][0]["slug"], "grafana-staging");

    let (_, empty) = api.get("/core/applications/?name=grafana").await;
    assert_eq!(empty["pagination"]["count"], 0);
    assert_eq!(empty["pagination"]["total_pages"], 1);
}
