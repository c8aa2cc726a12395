//! The protocol endpoints outside `/api/v3`: discovery, JWKS, the `client_credentials` grant
//! and SAML IdP metadata, without the API token.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Api;

/// An OAuth2 provider signed with the self-signed keypair, behind application `app`.
async fn oauth_app(api: &Api) -> (Value, Value) {
    let (_, keypairs) = api.get("/crypto/certificatekeypairs/").await;
    let keypair = keypairs["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|k| k["name"] == "authentik Self-signed Certificate")
        .cloned()
        .expect("self-signed keypair");
    let mut body = api.provider_body("p").await;
    body["signing_key"] = keypair["pk"].clone();
    let (status, provider) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    let (status, app) = api
        .post(
            "/core/applications/",
            json!({"name": "App", "slug": "app", "provider": provider["pk"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    (provider, keypair)
}

async fn get(api: &Api, path: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!("{}{path}", api.sim.base_url()))
        .await
        .expect("get");
    (response.status(), response.text().await.expect("text"))
}

#[tokio::test]
async fn discovery_names_the_issuer_from_the_public_url_or_the_request_host() {
    let api = Api::start().await;
    oauth_app(&api).await;
    let base = api.sim.base_url();
    let path = "/application/o/app/.well-known/openid-configuration";
    let (status, text) = get(&api, path).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["issuer"], format!("{base}/application/o/app/"));
    assert_eq!(doc["jwks_uri"], format!("{base}/application/o/app/jwks/"));
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/application/o/token/")
    );

    api.sim.set_public_url(Some("https://auth.example.org/"));
    let (_, text) = get(&api, path).await;
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["issuer"], "https://auth.example.org/application/o/app/");
    assert_eq!(
        get(&api, "/application/o/nope/.well-known/openid-configuration")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_jwks_holds_the_signing_key_with_its_certificate() {
    let api = Api::start().await;
    let (_, keypair) = oauth_app(&api).await;
    let (status, text) = get(&api, "/application/o/app/jwks/").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let key = &doc["keys"][0];
    assert_eq!(key["kid"], keypair["pk"]);
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(key["x"].as_str().map(str::len), Some(43));
    let pem = api
        .sim
        .certificate_pem("authentik Self-signed Certificate")
        .expect("pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(key["x5c"][0].as_str(), Some(body.as_str()));
}

#[tokio::test]
async fn client_credentials_answer_a_token_and_a_wrong_secret_invalid_grant() {
    let api = Api::start().await;
    let (provider, _) = oauth_app(&api).await;
    let url = format!("{}/application/o/token/", api.sim.base_url());
    let http = reqwest::Client::new();
    let id = provider["client_id"].as_str().expect("id");
    let secret = provider["client_secret"].as_str().expect("secret");
    let form = |secret: &str| {
        vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), id.to_owned()),
            ("client_secret".to_owned(), secret.to_owned()),
        ]
    };
    let ok = http
        .post(&url)
        .form(&form(secret))
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.expect("json");
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );

    let basic = http
        .post(&url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("post");
    assert_eq!(basic.status(), StatusCode::OK);

    let wrong = http
        .post(&url)
        .form(&form("wrong"))
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    let code = http
        .post(&url)
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .expect("post");
    let body: Value = code.json().await.expect("json");
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(
        api.sim.write_count(),
        2,
        "only the two API creates count as writes"
    );
}

#[tokio::test]
async fn saml_metadata_embeds_the_signing_certificate() {
    let api = Api::start().await;
    let (_, keypairs) = api.get("/crypto/certificatekeypairs/").await;
    let kp = keypairs["results"][0].clone();
    let (status, provider) = api
        .post(
            "/providers/saml/",
            json!({
                "name": "s",
                "authorization_flow": api.flow_pk("default-provider-authorization-implicit-consent").await,
                "invalidation_flow": api.flow_pk("default-provider-invalidation-flow").await,
                "acs_url": "https://sp.example.org/acs",
                "issuer": "https://auth.example.org/application/saml/sp/metadata/",
                "signing_kp": kp["pk"],
                "sign_assertion": true,
                "sign_response": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    api.post(
        "/core/applications/",
        json!({"name": "SP", "slug": "sp", "provider": provider["pk"]}),
    )
    .await;
    let (status, xml) = get(&api, "/application/saml/sp/metadata/").await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let pem = api
        .sim
        .certificate_pem(kp["name"].as_str().expect("name"))
        .expect("pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        xml.contains(&format!("<ds:X509Certificate>{body}</ds:X509Certificate>")),
        "{xml}"
    );
    assert!(
        xml.contains("entityID=\"https://auth.example.org/application/saml/sp/metadata/\""),
        "{xml}"
    );
    assert_eq!(
        get(&api, "/application/saml/nope/metadata/").await.0,
        StatusCode::NOT_FOUND
    );
}
