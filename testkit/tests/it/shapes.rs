//! Responses have exactly the keys of the recorded real responses.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, keys, sample, sample_status};

/// Create what samples 10 and 12 recorded: a confidential provider with a signing key and
/// three scope mappings, and an application using it.
async fn create_like_the_samples(api: &Api) -> (Value, Value) {
    let (_, mappings) = api
        .get("/propertymappings/provider/scope/?managed=goauthentik.io/providers/oauth2/scope-openid&managed=goauthentik.io/providers/oauth2/scope-email&managed=goauthentik.io/providers/oauth2/scope-profile")
        .await;
    let mapping_pks: Vec<Value> = mappings["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|m| m["pk"].clone())
        .collect();
    assert_eq!(mapping_pks.len(), 3);
    let (_, keypairs) = api
        .get("/crypto/certificatekeypairs/?name=authentik%20Self-signed%20Certificate")
        .await;
    let signing_key = keypairs["results"][0]["pk"].clone();

    let mut body = api.provider_body("test-oauth2-a1").await;
    body["client_type"] = json!("confidential");
    body["client_id"] = json!("test-client-a1");
    body["property_mappings"] = Value::Array(mapping_pks);
    body["signing_key"] = signing_key;
    let (status, provider) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status.as_u16(), sample_status("10-create-oauth2-provider"));

    let (status, app) = api
        .post(
            "/core/applications/",
            json!({
                "name": "Test App a1",
                "slug": "test-app-a1",
                "provider": provider["pk"],
                "meta_launch_url": "http://127.0.0.1:8080/",
            }),
        )
        .await;
    assert_eq!(status.as_u16(), sample_status("12-create-application"));
    (provider, app)
}

#[tokio::test]
async fn created_provider_and_application_have_the_recorded_keys() {
    let api = Api::start().await;
    let (provider, app) = create_like_the_samples(&api).await;
    assert_eq!(keys(&provider), keys(&sample("10-create-oauth2-provider")));
    assert_eq!(keys(&app), keys(&sample("12-create-application")));
    assert_eq!(
        keys(&app["provider_obj"]),
        keys(&sample("12-create-application")["provider_obj"])
    );
}

#[tokio::test]
async fn read_back_provider_and_application_match_the_recorded_responses() {
    let api = Api::start().await;
    let (provider, _) = create_like_the_samples(&api).await;

    let (status, read) = api
        .get(&format!("/providers/oauth2/{}/", provider["pk"]))
        .await;
    assert_eq!(status.as_u16(), sample_status("11-get-oauth2-provider"));
    let recorded = sample("11-get-oauth2-provider");
    assert_eq!(keys(&read), keys(&recorded));
    for field in [
        "client_type",
        "client_id",
        "access_code_validity",
        "access_token_validity",
        "refresh_token_validity",
        "refresh_token_threshold",
        "include_claims_in_id_token",
        "redirect_uris",
        "logout_uri",
        "logout_method",
        "sub_mode",
        "issuer_mode",
        "component",
        "verbose_name",
        "verbose_name_plural",
        "meta_model_name",
        "jwt_federation_sources",
        "jwt_federation_providers",
        "encryption_key",
        "authentication_flow",
    ] {
        assert_eq!(read[field], recorded[field], "{field}");
    }
    // Unlike sample 11 (read before the application existed), the provider is now assigned.
    assert_eq!(read["assigned_application_slug"], "test-app-a1");
    assert_eq!(read["assigned_application_name"], "Test App a1");

    let (status, app) = api.get("/core/applications/test-app-a1/").await;
    assert_eq!(status.as_u16(), sample_status("13-get-application"));
    let recorded = sample("13-get-application");
    assert_eq!(keys(&app), keys(&recorded));
    assert_eq!(keys(&app["provider_obj"]), keys(&recorded["provider_obj"]));
    for field in [
        "name",
        "slug",
        "backchannel_providers",
        "backchannel_providers_obj",
        "launch_url",
        "open_in_new_tab",
        "meta_launch_url",
        "meta_icon",
        "meta_icon_url",
        "meta_icon_themed_urls",
        "meta_description",
        "meta_publisher",
        "policy_engine_mode",
        "group",
    ] {
        assert_eq!(app[field], recorded[field], "{field}");
    }
    assert_eq!(
        app["provider_obj"]["assigned_application_slug"],
        recorded["provider_obj"]["assigned_application_slug"]
    );
}

#[tokio::test]
async fn lists_have_the_recorded_envelope_and_item_keys() {
    let api = Api::start().await;
    let (_, empty) = api
        .get("/core/applications/?superuser_full_list=true")
        .await;
    assert_eq!(empty, sample("01-applications-list"));

    create_like_the_samples(&api).await;
    for (path, name) in [
        (
            "/core/applications/?superuser_full_list=true",
            "17-applications-list-after",
        ),
        ("/providers/all/", "14-providers-all"),
        ("/outposts/instances/", "15-outposts"),
        ("/crypto/certificatekeypairs/", "04-certs"),
        ("/propertymappings/provider/scope/", "05-scope-mappings"),
        (
            "/flows/instances/?designation=authorization",
            "02-flows-authorization",
        ),
        (
            "/flows/instances/?designation=invalidation",
            "03-flows-invalidation",
        ),
    ] {
        let (status, list) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let recorded = sample(name);
        assert_eq!(keys(&list), keys(&recorded), "{path}");
        assert_eq!(
            keys(&list["pagination"]),
            keys(&recorded["pagination"]),
            "{path}"
        );
        assert_eq!(
            keys(&list["results"][0]),
            keys(&recorded["results"][0]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn me_has_the_recorded_keys() {
    let api = Api::start().await;
    let (status, me) = api.get("/core/users/me/").await;
    assert_eq!(status.as_u16(), sample_status("00-me"));
    let recorded = sample("00-me");
    assert_eq!(keys(&me), keys(&recorded));
    assert_eq!(keys(&me["user"]), keys(&recorded["user"]));
    assert_eq!(me["user"]["is_superuser"], true);
}

#[tokio::test]
async fn seeded_scope_mappings_are_authentiks_own() {
    let api = Api::start().await;
    let (_, list) = api.get("/propertymappings/provider/scope/").await;
    let strip = |list: &Value| -> Vec<Value> {
        list["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.as_object_mut().expect("object").remove("pk");
                m
            })
            .collect()
    };
    // Same order too: the view orders by scope name.
    assert_eq!(strip(&list), strip(&sample("05-scope-mappings")));
}

#[tokio::test]
async fn seeded_flows_match_the_recorded_ones_apart_from_pks() {
    let api = Api::start().await;
    for (designation, name) in [
        ("authorization", "02-flows-authorization"),
        ("invalidation", "03-flows-invalidation"),
    ] {
        let (_, list) = api
            .get(&format!("/flows/instances/?designation={designation}"))
            .await;
        let recorded = sample(name);
        assert_eq!(list["pagination"], recorded["pagination"]);
        for (ours, theirs) in list["results"]
            .as_array()
            .expect("results")
            .iter()
            .zip(recorded["results"].as_array().expect("results"))
        {
            for field in [
                "name",
                "slug",
                "title",
                "designation",
                "background_url",
                "export_url",
                "layout",
                "denied_action",
                "authentication",
                "policy_engine_mode",
            ] {
                assert_eq!(ours[field], theirs[field], "{designation} {field}");
            }
        }
    }
    assert_eq!(
        api.get("/flows/instances/default-authentication-flow/")
            .await
            .1["designation"],
        "authentication"
    );
}

#[tokio::test]
async fn keypairs_carry_fingerprints_in_authentiks_format() {
    let api = Api::start().await;
    let (_, list) = api.get("/crypto/certificatekeypairs/?has_key=true").await;
    let results = list["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for keypair in results {
        let sha256 = keypair["fingerprint_sha256"].as_str().expect("sha256");
        assert_eq!(sha256.len(), 95);
        assert_eq!(sha256, sha256.to_lowercase());
        assert_eq!(keypair["fingerprint_sha1"].as_str().map(str::len), Some(59));
    }
    let (_, jwt) = api
        .get("/crypto/certificatekeypairs/?managed=goauthentik.io/crypto/jwt-managed")
        .await;
    assert_eq!(
        jwt["results"][0]["name"],
        "authentik Internal JWT Certificate"
    );
    let pk = jwt["results"][0]["pk"].as_str().expect("pk");
    let (status, one) = api.get(&format!("/crypto/certificatekeypairs/{pk}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, jwt["results"][0]);
    assert_eq!(api.sim.certificate_keypairs().len(), 2);
}
