//! GitHub App authentication: app id + private key → a short-lived JWT → an installation token.
//!
//! GitHub signs nothing for us: the app proves itself with an RS256 JWT (`iss` = app id, `iat`
//! backdated 60 s for clock drift, `exp` ≤ 10 minutes later) and trades it at
//! `POST /app/installations/{id}/access_tokens` for a token valid one hour. The RSA signature uses
//! aws-lc-rs, already in the build through rustls and object_store. Keys are read from a PEM file
//! in either form GitHub hands out (PKCS#1 `RSA PRIVATE KEY`) or tools convert to (PKCS#8).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

/// An app's signing key, parsed once at build time.
pub struct AppKey {
    app_id: u64,
    key: RsaKeyPair,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppKey(app {}, [redacted])", self.app_id)
    }
}

impl AppKey {
    /// Parse a PEM private key. Errors never quote the key.
    pub fn from_pem(app_id: u64, pem: &str) -> Result<AppKey, String> {
        let (label, der) = pem_body(pem)?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => {
                return Err(format!(
                    "expected an RSA private key, found a PEM {other:?}"
                ));
            }
        }
        .map_err(|e| format!("not a usable RSA private key: {e}"))?;
        Ok(AppKey { app_id, key })
    }

    /// A JWT for `now`, valid nine minutes (GitHub allows at most ten).
    pub fn jwt(&self, now: DateTime<Utc>) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let iat = now.timestamp() - 60;
        let claims = format!(
            r#"{{"iat":{iat},"exp":{},"iss":"{}"}}"#,
            now.timestamp() + 9 * 60,
            self.app_id
        );
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "RSA signing failed".to_string())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The label and DER bytes of the first PEM block in `text`.
fn pem_body(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut label = None;
    let mut body = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            label = Some(rest.trim_end_matches('-').to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or("no PEM block (-----BEGIN ...-----) found")?;
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("PEM body is not valid base64: {e}"))?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    #[test]
    fn signs_a_verifiable_jwt_with_the_app_id_as_issuer() {
        let generated = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = generated.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        let key = AppKey::from_pem(4242, &pem).unwrap();
        let now = Utc::now();
        let jwt = key.jwt(now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "4242");
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 600);
        let public = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            generated.public_key().as_ref().to_vec(),
        );
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_keys_are_clear_errors() {
        assert!(AppKey::from_pem(1, "nothing").unwrap_err().contains("PEM"));
        let e = AppKey::from_pem(
            1,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        )
        .unwrap_err();
        assert!(e.contains("CERTIFICATE"), "{e}");
    }
}
