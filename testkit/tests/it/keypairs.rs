//! Certificate keypairs hold real certificates: `view_certificate` answers the PEM whose DER
//! hashes to the listed fingerprint, and `cert_expiry` is the certificate's.

use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::support::Api;

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn view_certificate_answers_the_pem_the_fingerprints_are_computed_from() {
    let api = Api::start().await;
    let (_, list) = api.get("/crypto/certificatekeypairs/").await;
    for keypair in list["results"].as_array().expect("results") {
        let pk = keypair["pk"].as_str().expect("pk");
        let (status, data) = api
            .get(&format!(
                "/crypto/certificatekeypairs/{pk}/view_certificate/"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{data}");
        let pem = data["data"].as_str().expect("data");
        let (sha256, sha1) = testkit::authentik::fingerprints(&der_of(pem));
        assert_eq!(keypair["fingerprint_sha256"], sha256.as_str());
        assert_eq!(keypair["fingerprint_sha1"], sha1.as_str());
    }
    assert_eq!(api.sim.certificate_views(), 2);
}

#[tokio::test]
async fn added_keypairs_are_distinct_certificates_with_their_validity() {
    let api = Api::start().await;
    let short = api.sim.add_keypair("short-lived", 10);
    let long = api.sim.add_keypair("long-lived", 400);
    assert_ne!(short["fingerprint_sha256"], long["fingerprint_sha256"]);
    let expiry = short["cert_expiry"].as_str().expect("expiry");
    let expiry =
        time::OffsetDateTime::parse(expiry, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    let off = expiry - (time::OffsetDateTime::now_utc() + time::Duration::days(10));
    assert!(
        off.abs() < time::Duration::minutes(1),
        "{expiry} is not in ten days"
    );
    let pem = api.sim.certificate_pem("short-lived").expect("pem");
    let (sha256, _) = testkit::authentik::fingerprints(&der_of(&pem));
    assert_eq!(short["fingerprint_sha256"], sha256.as_str());
    let (_, found) = api
        .get("/crypto/certificatekeypairs/?name=short-lived")
        .await;
    assert_eq!(found["results"][0]["pk"], short["pk"]);
    let (_, unknown) = api
        .get("/crypto/certificatekeypairs/00000000-0000-4000-8000-000000000000/view_certificate/")
        .await;
    assert_eq!(
        unknown["detail"],
        "No CertificateKeyPair matches the given query."
    );
}
