//! Compact JWS (RFC 7515) signing and verification for RS256/384/512, PS256/384/512, ES256/384
//! and EdDSA on top of ring. Invariants: only those algorithms are ever accepted (never `none` or
//! HMAC, so a public key can never be used as an HMAC secret), a key bound to one algorithm is
//! never used for another, and verification reads only public key members.

use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, UnparsedPublicKey};

use super::jwk::member;
use super::{b64url_decode, b64url_encode, Alg, JoseError, Jwk};

/// A private key loaded into ring, ready to sign.
pub struct Signer {
    kid: String,
    alg: Alg,
    key: SigningKey,
}

enum SigningKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

fn key_alg(jwk: &Jwk) -> Result<Alg, JoseError> {
    Alg::of_key(jwk)
}

/// 0x04 || x || y, the uncompressed SEC1 point ring takes for EC public keys (`size`: 32 for
/// P-256, 48 for P-384).
fn ec_point(jwk: &Jwk, size: usize) -> Result<Vec<u8>, JoseError> {
    let x = member(&jwk.x, "missing x")?;
    let y = member(&jwk.y, "missing y")?;
    if x.len() != size || y.len() != size {
        return Err(JoseError::InvalidKey("EC coordinates do not have the curve's size"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

impl Signer {
    pub fn from_jwk(jwk: &Jwk) -> Result<Signer, JoseError> {
        let alg = key_alg(jwk)?;
        let d = member(&jwk.d, "not a private key")?;
        let key = match alg {
            a if a.is_rsa() => {
                let n = member(&jwk.n, "missing n")?;
                let e = member(&jwk.e, "missing e")?;
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents { n, e },
                    d,
                    p: member(&jwk.p, "missing p")?,
                    q: member(&jwk.q, "missing q")?,
                    dP: member(&jwk.dp, "missing dp")?,
                    dQ: member(&jwk.dq, "missing dq")?,
                    qInv: member(&jwk.qi, "missing qi")?,
                };
                let pair = RsaKeyPair::from_components(&components)
                    .map_err(|_| JoseError::InvalidKey("RSA private key rejected"))?;
                SigningKey::Rsa(pair)
            }
            Alg::ES256 | Alg::ES384 => {
                let (signing, size) = match alg {
                    Alg::ES384 => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, 48),
                    _ => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, 32),
                };
                let point = ec_point(jwk, size)?;
                let rng = ring::rand::SystemRandom::new();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(signing, &d, &point, &rng)
                    .map_err(|_| JoseError::InvalidKey("EC private key does not match public key"))?;
                SigningKey::Ec(pair)
            }
            _ => {
                let x = member(&jwk.x, "missing x")?;
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                    .map_err(|_| JoseError::InvalidKey("Ed25519 private key does not match public key"))?;
                SigningKey::Ed(pair)
            }
        };
        Ok(Signer { kid: jwk.kid.clone(), alg, key })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Produces `header.payload.signature` with header `{"alg":..,"kid":..,"typ":"JWT"}`.
    pub fn sign(&self, claims_json: &[u8]) -> Result<String, JoseError> {
        self.sign_typed(claims_json, "JWT")
    }

    /// As [`Signer::sign`] with another `typ` (explicit typing, RFC 8725 §3.11: `logout+jwt`).
    pub fn sign_typed(&self, claims_json: &[u8], typ: &str) -> Result<String, JoseError> {
        // serde_json escapes the kid and typ; the member order is fixed here rather than left to a map type.
        let kid = serde_json::to_string(&self.kid).map_err(|_| JoseError::Json)?;
        let typ = serde_json::to_string(typ).map_err(|_| JoseError::Json)?;
        let header = format!("{{\"alg\":\"{}\",\"kid\":{},\"typ\":{}}}", self.alg.as_str(), kid, typ);
        let mut token = b64url_encode(header.as_bytes());
        token.push('.');
        token.push_str(&b64url_encode(claims_json));
        let sig = self.sign_input(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64url_encode(&sig));
        Ok(token)
    }

    /// Raw signature over an arbitrary JWS signing input (used by `sign` and by known-answer tests
    /// whose headers differ from ours).
    pub(crate) fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = ring::rand::SystemRandom::new();
        match &self.key {
            SigningKey::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match self.alg {
                    Alg::RS384 => &signature::RSA_PKCS1_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_SHA384,
                    Alg::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(padding, &rng, input, &mut sig).map_err(|_| JoseError::Crypto)?;
                Ok(sig)
            }
            SigningKey::Ec(pair) => Ok(pair.sign(&rng, input).map_err(|_| JoseError::Crypto)?.as_ref().to_vec()),
            SigningKey::Ed(pair) => Ok(pair.sign(input).as_ref().to_vec()),
        }
    }
}

/// Verifies one signature with one key's public members only.
fn verify_with(alg: Alg, jwk: &Jwk, input: &[u8], sig: &[u8]) -> Result<(), JoseError> {
    let ok = match alg {
        a if a.is_rsa() => {
            let n = member(&jwk.n, "missing n")?;
            let e = member(&jwk.e, "missing e")?;
            let params: &signature::RsaParameters = match a {
                Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                _ => &signature::RSA_PKCS1_2048_8192_SHA256,
            };
            ring::rsa::PublicKeyComponents { n, e }.verify(params, input, sig)
        }
        Alg::ES256 => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, ec_point(jwk, 32)?).verify(input, sig)
        }
        Alg::ES384 => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, ec_point(jwk, 48)?).verify(input, sig)
        }
        _ => UnparsedPublicKey::new(&signature::ED25519, member(&jwk.x, "missing x")?).verify(input, sig),
    };
    ok.map_err(|_| JoseError::BadSignature)
}

/// Proves a private JWK's parts belong together: it must load in ring, a test signature must verify
/// with the public members, and for RSA `d` must agree with `dp`/`dq` because ring never reads `d`.
pub(crate) fn check_private_consistency(jwk: &Jwk) -> Result<(), JoseError> {
    let signer = Signer::from_jwk(jwk)?;
    let probe = b"jose private key consistency probe";
    let sig = signer.sign_input(probe)?;
    verify_with(signer.alg, jwk, probe, &sig)
        .map_err(|_| JoseError::InvalidKey("private key does not match public key"))?;
    if signer.alg.is_rsa() {
        use rsa::BigUint;
        let int = |m: &Option<String>, why| member(m, why).map(|b| BigUint::from_bytes_be(&b));
        let d = int(&jwk.d, "missing d")?;
        let one = BigUint::from(1u32);
        for (prime, exp) in [(&jwk.p, &jwk.dp), (&jwk.q, &jwk.dq)] {
            let prime = int(prime, "missing prime")?;
            let exp = int(exp, "missing CRT exponent")?;
            // ring accepted the key, so each prime is > 1 and this cannot underflow or divide by zero.
            if prime <= one || &d % (&prime - &one) != exp {
                return Err(JoseError::InvalidKey("RSA d does not match CRT parameters"));
            }
        }
    }
    Ok(())
}

/// A token whose signature checked out. Claims are not validated here (exp, aud, ... are the caller's).
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub header: serde_json::Value,
    pub payload: Vec<u8>,
    pub kid: Option<String>,
}

/// Verifies a compact JWS against a key set.
/// `keys` may be owned or borrowed JWKs (a private one verifies with its public members).
pub fn verify<K: std::borrow::Borrow<Jwk>>(token: &str, keys: &[K]) -> Result<Verified, JoseError> {
    let segments: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, sig_b64] = segments.as_slice() else {
        return Err(JoseError::Malformed("expected three segments"));
    };
    let header: serde_json::Value = serde_json::from_slice(&b64url_decode(header_b64)?).map_err(|_| JoseError::Json)?;
    let obj = header.as_object().ok_or(JoseError::Malformed("header is not an object"))?;
    let alg = match obj.get("alg") {
        Some(serde_json::Value::String(a)) => Alg::parse(a).ok_or(JoseError::UnsupportedAlg)?,
        _ => return Err(JoseError::Malformed("header alg missing")),
    };
    // We implement no extensions, so RFC 7515 §4.1.11 requires rejecting any `crit`.
    if obj.contains_key("crit") {
        return Err(JoseError::Malformed("unsupported crit header"));
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JoseError::Malformed("header kid is not a string")),
    };
    let payload = b64url_decode(payload_b64)?;
    let sig = b64url_decode(sig_b64)?;
    // The signing input is the encoded text exactly as received.
    let input_len = header_b64.len() + 1 + payload_b64.len();
    let input = token.as_bytes().get(..input_len).ok_or(JoseError::Malformed("expected three segments"))?;

    let mut mismatched = false;
    let mut tried = false;
    for key in keys.iter().map(|k| k.borrow()).filter(|k| kid.as_deref().is_none_or(|want| k.kid == want)) {
        let key_alg_ok = key.alg.as_deref().is_none_or(|a| a == alg.as_str());
        if !key_alg_ok || !alg.fits(key) {
            mismatched = true;
            continue;
        }
        tried = true;
        if verify_with(alg, key, input, &sig).is_ok() {
            return Ok(Verified { header, payload, kid });
        }
    }
    Err(if tried {
        JoseError::BadSignature
    } else if mismatched {
        JoseError::AlgMismatch
    } else {
        JoseError::KeyNotFound
    })
}

/// Whether a verified token's `aud` (a string or a list) names one of `accepted`.
pub fn aud_names(aud: Option<&serde_json::Value>, accepted: &[&str]) -> bool {
    match aud {
        Some(serde_json::Value::String(a)) => accepted.contains(&a.as_str()),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).any(|x| accepted.contains(&x)),
        _ => false,
    }
}

/// Whether a verified token's header types it as a plain JWT (an ID token), not as another
/// kind this server signs with the same keys (a `logout+jwt` logout token, RFC 8725 §3.11).
pub fn typed_as_jwt(header: &serde_json::Value) -> bool {
    header.get("typ").and_then(|t| t.as_str()).is_none_or(|t| t.eq_ignore_ascii_case("JWT"))
}

/// A time claim (RFC 7519 §2 NumericDate: any JSON number, fractions and exponents included) in
/// whole seconds: `Ok(None)` when absent, `Err` when present but not a number, so a check of
/// `nbf`, `iat` or `exp` can never pass by reading a malformed value as a missing one.
pub fn numeric_date(v: Option<&serde_json::Value>) -> Result<Option<i64>, NotANumericDate> {
    match v {
        None => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            // Saturating: a date past i64 is as far away as i64::MAX.
            None => n.as_f64().filter(|f| f.is_finite()).map(|f| Some(f.floor() as i64)).ok_or(NotANumericDate),
        },
        Some(_) => Err(NotANumericDate),
    }
}

/// A time claim that is not a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotANumericDate;

/// One part of a compact JWS (0: header, 1: payload) as JSON, **unverified**: for choosing a key
/// or a client before verification, or where only how an error is delivered depends on it.
/// Parts over 16 KiB are not read.
pub fn peek(jwt: &str, part: usize) -> Option<serde_json::Value> {
    let text = jwt.split('.').nth(part).filter(|t| t.len() <= 16 * 1024)?;
    serde_json::from_slice(&b64url_decode(text).ok()?).ok()
}

/// OpenID Connect `at_hash` / `c_hash`: base64url of the left half of the hash that the ID token's
/// algorithm uses (SHA-256, -384 or -512 as its name says; SHA-512 for EdDSA per OIDC's Ed25519
/// convention).
pub fn half_hash(alg: Alg, data: &[u8]) -> String {
    let algorithm = match alg {
        Alg::RS256 | Alg::PS256 | Alg::ES256 => &ring::digest::SHA256,
        Alg::RS384 | Alg::PS384 | Alg::ES384 => &ring::digest::SHA384,
        Alg::RS512 | Alg::PS512 | Alg::EdDSA => &ring::digest::SHA512,
    };
    let digest = ring::digest::digest(algorithm, data);
    let bytes = digest.as_ref();
    b64url_encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwk::tests::rsa_key;

    /// One key per algorithm; the RSA ones share the test key (generation is slow), bound to
    /// their algorithm by `alg`.
    fn keys() -> Vec<Jwk> {
        let mut out: Vec<Jwk> = [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512]
            .iter()
            .map(|a| Jwk { alg: Some(a.as_str().into()), kid: format!("rsa-{}", a.as_str()), ..rsa_key().clone() })
            .collect();
        out.push(Jwk::generate(Alg::ES256, "ec-1", "sig").unwrap());
        out.push(Jwk::generate(Alg::ES384, "ec-384", "sig").unwrap());
        out.push(Jwk::generate(Alg::EdDSA, "ed-1", "sig").unwrap());
        out
    }

    #[test]
    fn every_algorithm_has_a_key_and_the_algorithms_do_not_cross() {
        let ks = keys();
        let algs: Vec<Alg> = ks.iter().map(|k| Alg::of_key(k).unwrap()).collect();
        assert_eq!(algs, Alg::ALL.to_vec());
        // A token of one RSA algorithm does not verify as another with the same key: the header's
        // alg is bound to the key's.
        let rs = &ks[0];
        let token = Signer::from_jwk(rs).unwrap().sign(b"{}").unwrap();
        let as_ps = Jwk { alg: Some("PS256".into()), ..rs.public() };
        assert_eq!(verify(&token, &[as_ps]), Err(JoseError::AlgMismatch));
        // Without alg on the key, the header decides among the RSA algorithms; the signature
        // must still be of that algorithm.
        let unbound = Jwk { alg: None, ..rs.public() };
        assert!(verify(&token, std::slice::from_ref(&unbound)).is_ok());
        let parts: Vec<&str> = token.split('.').collect();
        let relabeled = format!("{}.{}.{}", b64url_encode(br#"{"alg":"PS256","kid":"rsa-RS256"}"#), parts[1], parts[2]);
        assert_eq!(verify(&relabeled, &[unbound]), Err(JoseError::BadSignature));
        // A P-384 key cannot claim ES256, and P-256 cannot claim ES384.
        let p384 = Jwk { alg: Some("ES256".into()), ..ks[7].clone() };
        assert!(Signer::from_jwk(&p384).is_err());
        assert!(p384.validate().is_err());
        // Generated keys of every algorithm validate and say what they are.
        for a in [Alg::PS384, Alg::ES384] {
            let k = Jwk::generate(a, "g", "sig").unwrap();
            k.validate().unwrap();
            assert_eq!(k.alg.as_deref(), Some(a.as_str()));
        }
    }

    #[test]
    fn half_hashes_use_the_algorithms_hash() {
        for (alg, len) in [(Alg::RS256, 16), (Alg::PS384, 24), (Alg::ES384, 24), (Alg::RS512, 32), (Alg::EdDSA, 32)] {
            assert_eq!(b64url_decode(&half_hash(alg, b"x")).unwrap().len(), len, "{alg:?}");
        }
    }

    fn tamper_char(s: &str, at: usize) -> String {
        let mut bytes = s.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn signer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Signer>();
    }

    #[test]
    fn round_trip_all_algs_with_private_and_public_keys() {
        let claims = br#"{"sub":"alice","n":1}"#;
        for key in keys() {
            let signer = Signer::from_jwk(&key).unwrap();
            assert_eq!(Some(signer.alg().as_str()), key.alg.as_deref());
            let token = signer.sign(claims).unwrap();
            let header = String::from_utf8(b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap();
            assert_eq!(
                header,
                format!("{{\"alg\":\"{}\",\"kid\":\"{}\",\"typ\":\"JWT\"}}", signer.alg().as_str(), key.kid)
            );
            let v = verify(&token, std::slice::from_ref(&key)).unwrap();
            assert_eq!(v.payload, claims);
            assert_eq!(v.kid.as_deref(), Some(key.kid.as_str()));
            assert_eq!(v.header["typ"], "JWT");
            // Published keys and a whole mixed set work too.
            let public: Vec<Jwk> = keys().iter().map(Jwk::public).chain([key.public()]).collect();
            assert!(public.iter().all(|k| !k.is_private()));
            assert_eq!(verify(&token, &public).unwrap().payload, claims);
        }
    }

    #[test]
    fn kid_is_json_escaped() {
        let key = Jwk::generate(Alg::EdDSA, "a\"b\\c", "sig").unwrap();
        let token = Signer::from_jwk(&key).unwrap().sign(b"{}").unwrap();
        let v = verify(&token, &[key.public()]).unwrap();
        assert_eq!(v.kid.as_deref(), Some("a\"b\\c"));
    }

    #[test]
    fn public_key_cannot_sign() {
        assert_eq!(Signer::from_jwk(&rsa_key().public()).unwrap_err(), JoseError::InvalidKey("not a private key"));
    }

    #[test]
    fn tampering_is_detected() {
        for key in keys() {
            let token = Signer::from_jwk(&key).unwrap().sign(br#"{"sub":"alice"}"#).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let bad_payload = format!("{}.{}.{}", parts[0], b64url_encode(br#"{"sub":"mallory"}"#), parts[2]);
            assert_eq!(verify(&bad_payload, &[key.public()]), Err(JoseError::BadSignature));
            let bad_sig = format!("{}.{}.{}", parts[0], parts[1], tamper_char(parts[2], 5));
            assert_eq!(verify(&bad_sig, &[key.public()]), Err(JoseError::BadSignature));
            let sig = b64url_decode(parts[2]).unwrap();
            let truncated_sig = format!("{}.{}.{}", parts[0], parts[1], b64url_encode(&sig[..sig.len() - 1]));
            assert_eq!(verify(&truncated_sig, &[key.public()]), Err(JoseError::BadSignature));
        }
    }

    #[test]
    fn wrong_kid_and_wrong_key_are_rejected() {
        let key = Jwk::generate(Alg::ES256, "ec-1", "sig").unwrap();
        let token = Signer::from_jwk(&key).unwrap().sign(b"{}").unwrap();
        let renamed = Jwk { kid: "ec-2".into(), ..key.public() };
        assert_eq!(verify(&token, &[renamed]), Err(JoseError::KeyNotFound));
        let other = Jwk::generate(Alg::ES256, "ec-1", "sig").unwrap().public();
        assert_eq!(verify(&token, &[other]), Err(JoseError::BadSignature));
        assert_eq!(verify::<Jwk>(&token, &[]), Err(JoseError::KeyNotFound));
    }

    fn forge(header: &str) -> String {
        format!("{}.{}.{}", b64url_encode(header.as_bytes()), b64url_encode(b"{}"), b64url_encode(&[1u8; 64]))
    }

    #[test]
    fn forbidden_algorithms_are_rejected() {
        let ks = keys();
        // HMAC is never accepted, so a public key can never serve as an HMAC secret.
        for alg in ["none", "HS256", "HS512", "ES512", "RSA-OAEP", ""] {
            let token = forge(&format!("{{\"alg\":\"{alg}\"}}"));
            assert_eq!(verify(&token, &ks), Err(JoseError::UnsupportedAlg), "{alg}");
        }
        // An unsigned token with an empty signature segment, the classic `none` attack.
        let none = format!("{}.{}.", b64url_encode(br#"{"alg":"none"}"#), b64url_encode(b"{}"));
        assert_eq!(verify(&none, &ks), Err(JoseError::UnsupportedAlg));
        assert!(matches!(verify(&forge("{}"), &ks), Err(JoseError::Malformed(_))));
        assert!(matches!(verify(&forge("[1]"), &ks), Err(JoseError::Malformed(_))));
        assert!(matches!(verify(&forge(r#"{"alg":"ES256","crit":["x"]}"#), &ks), Err(JoseError::Malformed(_))));
        assert!(matches!(verify(&forge(r#"{"alg":"ES256","kid":5}"#), &ks), Err(JoseError::Malformed(_))));
    }

    #[test]
    fn key_alg_must_match_header_alg() {
        let ec = Jwk::generate(Alg::ES256, "k", "sig").unwrap();
        let token = forge(r#"{"alg":"RS256","kid":"k"}"#);
        assert_eq!(verify(&token, &[ec.public()]), Err(JoseError::AlgMismatch));
        // An RSA key explicitly bound to a different alg is not used even though kty fits.
        let rsa_bound = Jwk { alg: Some("ES256".into()), ..rsa_key().public() };
        let token = Signer::from_jwk(rsa_key()).unwrap().sign(b"{}").unwrap();
        assert_eq!(verify(&token, &[rsa_bound]), Err(JoseError::AlgMismatch));
    }

    #[test]
    fn segment_count_is_enforced() {
        let key = Jwk::generate(Alg::EdDSA, "ed", "sig").unwrap();
        let token = Signer::from_jwk(&key).unwrap().sign(b"{}").unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let two = format!("{}.{}", parts[0], parts[1]);
        let four = format!("{token}.{}", parts[2]);
        assert_eq!(verify(&two, &[key.public()]), Err(JoseError::Malformed("expected three segments")));
        assert_eq!(verify(&four, &[key.public()]), Err(JoseError::Malformed("expected three segments")));
        assert_eq!(verify("", &[key.public()]), Err(JoseError::Malformed("expected three segments")));
        let padded = format!("{}.{}.{}=", parts[0], parts[1], parts[2]);
        assert_eq!(verify(&padded, &[key.public()]), Err(JoseError::Base64));
    }

    // RFC 7515 Appendix A.2: RS256 example.
    const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const RFC7515_A2_JWS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    const RFC7515_PAYLOAD: &[u8] =
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

    #[test]
    fn rfc7515_a2_rs256_known_answer() {
        let key: Jwk = serde_json::from_str(&format!(r#"{{"kty":"RSA","n":"{RFC7515_A2_N}","e":"AQAB"}}"#)).unwrap();
        key.validate().unwrap();
        let v = verify(RFC7515_A2_JWS, std::slice::from_ref(&key)).unwrap();
        assert_eq!(v.payload, RFC7515_PAYLOAD);
        assert_eq!(v.kid, None);
        assert_eq!(verify(&tamper_char(RFC7515_A2_JWS, 200), &[key]), Err(JoseError::BadSignature));
    }

    // RFC 7515 Appendix A.3: ES256 example.
    const RFC7515_A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const RFC7515_A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const RFC7515_A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    const RFC7515_A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    #[test]
    fn rfc7515_a3_es256_known_answer() {
        let json =
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{RFC7515_A3_X}","y":"{RFC7515_A3_Y}","d":"{RFC7515_A3_D}"}}"#);
        let private: Jwk = serde_json::from_str(&json).unwrap();
        private.validate().unwrap();
        let v = verify(RFC7515_A3_JWS, &[private.public()]).unwrap();
        assert_eq!(v.payload, RFC7515_PAYLOAD);
        // ECDSA is randomized, so the RFC key can only be checked by a fresh round trip.
        let token = Signer::from_jwk(&private).unwrap().sign(RFC7515_PAYLOAD).unwrap();
        assert_eq!(verify(&token, &[private.public()]).unwrap().payload, RFC7515_PAYLOAD);
    }

    // RFC 8037 Appendix A.1 key and A.4 signature.
    #[test]
    fn rfc8037_a4_ed25519_known_answer() {
        let key: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        key.validate().unwrap();
        let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let expected = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let sig = Signer::from_jwk(&key).unwrap().sign_input(input.as_bytes()).unwrap();
        assert_eq!(b64url_encode(&sig), expected);
        let v = verify(&format!("{input}.{expected}"), &[key.public()]).unwrap();
        assert_eq!(v.payload, b"Example of Ed25519 signing");
    }

    #[test]
    fn half_hash_matches_oidc_example_and_independent_digest() {
        // OpenID Connect Core 1.0, Appendix A.3 (RS256 access token and its at_hash).
        assert_eq!(half_hash(Alg::RS256, b"jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
        let data = b"Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";
        let sha512 = ring::digest::digest(&ring::digest::SHA512, data);
        assert_eq!(half_hash(Alg::EdDSA, data), b64url_encode(&sha512.as_ref()[..32]));
        assert_eq!(half_hash(Alg::EdDSA, data).len(), 43);
        assert_eq!(half_hash(Alg::ES256, data), half_hash(Alg::RS256, data));
        assert_eq!(half_hash(Alg::ES256, data).len(), 22);
    }

    #[test]
    fn only_untyped_and_jwt_typed_tokens_pass_as_id_tokens() {
        use serde_json::json;
        assert!(typed_as_jwt(&json!({"alg": "RS256"})));
        assert!(typed_as_jwt(&json!({"alg": "RS256", "typ": "JWT"})));
        assert!(typed_as_jwt(&json!({"alg": "RS256", "typ": "jwt"})));
        assert!(!typed_as_jwt(&json!({"alg": "RS256", "typ": "logout+jwt"})));
        assert!(!typed_as_jwt(&json!({"alg": "RS256", "typ": "at+jwt"})));
    }

    #[test]
    fn numeric_dates_are_any_json_number_and_nothing_else() {
        use serde_json::json;
        let d = |v: serde_json::Value| numeric_date(Some(&v));
        assert_eq!(numeric_date(None), Ok(None));
        assert_eq!(d(json!(1_800_000_000)), Ok(Some(1_800_000_000)));
        assert_eq!(d(json!(1_800_000_000.9)), Ok(Some(1_800_000_000)));
        assert_eq!(d(json!(1.8e9)), Ok(Some(1_800_000_000)));
        assert_eq!(d(json!(-0.5)), Ok(Some(-1)));
        assert_eq!(d(json!(1e300)), Ok(Some(i64::MAX)));
        assert_eq!(d(json!(u64::MAX)), Ok(Some(i64::MAX)));
        for bad in [json!("1800000000"), json!(null), json!(true), json!([1]), json!({})] {
            assert_eq!(d(bad.clone()), Err(NotANumericDate), "{bad}");
        }
    }
}
