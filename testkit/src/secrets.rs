//! Looking for leaked secrets in what a test captured (output, logs, rows, files), shared by the
//! producer's and the worker's redaction tests so both search the same way.

use sha2::Digest;

/// The unkeyed SHA-256 of `text`, lowercase hex: what a careless fingerprint would print.
pub fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fails naming the first secret (or unkeyed SHA-256 of one, whole or as a short prefix, in
/// either case) that appears in `text`, which is described by `what`.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} shows the secret `{secret}`:\n{text}"
        );
        let digest = sha256_hex(secret);
        for shown in [
            digest.clone(),
            digest.to_uppercase(),
            digest[..12].to_owned(),
            digest[..12].to_uppercase(),
        ] {
            assert!(
                !text.contains(&shown),
                "{what} shows an unkeyed SHA-256 of `{secret}` ({shown})"
            );
        }
    }
}

/// The permission bits of a file (`0o600` for one only its owner may read).
pub fn file_mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("metadata of {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hex_digest_is_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    #[should_panic(expected = "an unkeyed SHA-256 of `hunter2`")]
    fn a_digest_prefix_is_a_leak() {
        let prefix = sha256_hex("hunter2")[..12].to_uppercase();
        assert_no_secret("the log", &format!("fp={prefix}"), &["hunter2".into()]);
    }
}
