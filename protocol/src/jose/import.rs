//! Keys from PEM or DER documents as JWKs (`hydra import jwk`): RSA (PKCS#8, PKCS#1, SPKI),
//! P-256 and P-384 (PKCS#8, SEC1 `EC PRIVATE KEY`, SPKI) and Ed25519 (PKCS#8, SPKI), private or
//! public.
//!
//! Invariants: the algorithm is the caller's (`--alg`), never guessed from the document, and a
//! document that is not a key of that algorithm is an error; every key produced passes
//! [`Jwk::validate`] (RSA at least 2048 bits, consistent private members); errors never quote
//! key material.

use super::jwk::der::Curve;
use super::jwk::{Alg, Jwk};
use super::{b64url_encode, JoseError};

const BAD: JoseError = JoseError::InvalidKey("not a key document of the requested algorithm");

/// The DER body of a PEM document and its label, or the input itself when it is not PEM.
fn unpem(doc: &[u8]) -> Result<(Option<String>, Vec<u8>), JoseError> {
    let Ok(text) = std::str::from_utf8(doc) else { return Ok((None, doc.to_vec())) };
    let Some(start) = text.find("-----BEGIN ") else { return Ok((None, doc.to_vec())) };
    let rest = &text[start + 11..];
    let label_end = rest.find("-----").ok_or(BAD)?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body.find("-----END ").ok_or(BAD)?;
    let b64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| BAD)?;
    Ok((Some(label), der))
}

/// A JWK for `alg` from a PEM or DER document.
pub fn jwk_from_document(doc: &[u8], alg: Alg, kid: &str, use_: &str) -> Result<Jwk, JoseError> {
    let (label, der) = unpem(doc)?;
    let label = label.as_deref();
    let mut jwk = match alg {
        a if a.is_rsa() => rsa_jwk(label, &der)?,
        Alg::ES256 => ec_jwk(label, &der, Curve::P256)?,
        Alg::ES384 => ec_jwk(label, &der, Curve::P384)?,
        _ => ed25519_jwk(label, &der)?,
    };
    jwk.alg = Some(alg.as_str().to_string());
    jwk.kid = kid.to_string();
    jwk.use_ = Some(use_.to_string());
    jwk.validate()?;
    Ok(jwk)
}

fn blank(kty: &str) -> Jwk {
    Jwk::bare(kty)
}

fn rsa_jwk(label: Option<&str>, der: &[u8]) -> Result<Jwk, JoseError> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let enc = |v: &rsa::BigUint| Some(b64url_encode(&v.to_bytes_be()));
    let private = match label {
        Some("PRIVATE KEY") | None => rsa::RsaPrivateKey::from_pkcs8_der(der).ok(),
        Some("RSA PRIVATE KEY") => rsa::RsaPrivateKey::from_pkcs1_der(der).ok(),
        _ => None,
    };
    if let Some(key) = private {
        let [p, q] = key.primes() else { return Err(JoseError::InvalidKey("RSA keys with more than two primes")) };
        let one = rsa::BigUint::from(1u32);
        let qi = key.crt_coefficient().ok_or(BAD)?;
        return Ok(Jwk {
            n: enc(key.n()),
            e: enc(key.e()),
            d: enc(key.d()),
            dp: enc(&(key.d() % (p - &one))),
            dq: enc(&(key.d() % (q - &one))),
            qi: enc(&qi),
            p: enc(p),
            q: enc(q),
            ..blank("RSA")
        });
    }
    let public = match label {
        Some("PUBLIC KEY") | None => rsa::RsaPublicKey::from_public_key_der(der).ok(),
        Some("RSA PUBLIC KEY") => rsa::RsaPublicKey::from_pkcs1_der(der).ok(),
        _ => None,
    };
    let key = public.ok_or(BAD)?;
    Ok(Jwk { n: enc(key.n()), e: enc(key.e()), ..blank("RSA") })
}

fn ec_jwk(label: Option<&str>, der: &[u8], curve: Curve) -> Result<Jwk, JoseError> {
    let n = curve.size();
    let point_jwk = |point: &[u8], scalar: Option<&[u8]>| -> Result<Jwk, JoseError> {
        if point.len() != 1 + 2 * n || point[0] != 0x04 {
            return Err(BAD);
        }
        Ok(Jwk {
            crv: Some(curve.name().into()),
            x: Some(b64url_encode(&point[1..1 + n])),
            y: Some(b64url_encode(&point[1 + n..])),
            d: scalar.map(b64url_encode),
            ..blank("EC")
        })
    };
    match label {
        Some("PRIVATE KEY") | None if super::jwk::der::ec_from_pkcs8(der, curve).is_ok() => {
            let (scalar, point) = super::jwk::der::ec_from_pkcs8(der, curve)?;
            point_jwk(point, Some(scalar))
        }
        Some("EC PRIVATE KEY") | None if super::jwk::der::ec_from_sec1(der, curve).is_ok() => {
            let (scalar, point) = super::jwk::der::ec_from_sec1(der, curve)?;
            point_jwk(point, Some(scalar))
        }
        Some("PUBLIC KEY") | None => point_jwk(super::jwk::der::spki_key(der)?, None),
        _ => Err(BAD),
    }
}

fn ed25519_jwk(label: Option<&str>, der: &[u8]) -> Result<Jwk, JoseError> {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let public = |x: &[u8]| Jwk { crv: Some("Ed25519".into()), x: Some(b64url_encode(x)), ..blank("OKP") };
    match label {
        Some("PRIVATE KEY") | None if super::jwk::der::ed25519_seed_from_pkcs8(der).is_ok() => {
            let seed = super::jwk::der::ed25519_seed_from_pkcs8(der)?;
            let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| BAD)?;
            Ok(Jwk { d: Some(b64url_encode(seed)), ..public(pair.public_key().as_ref()) })
        }
        Some("PUBLIC KEY") | None => {
            let x = super::jwk::der::spki_key(der)?;
            if x.len() != 32 {
                return Err(BAD);
            }
            Ok(public(x))
        }
        _ => Err(BAD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> Vec<u8> {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n")).into_bytes()
    }

    #[test]
    fn rsa_pkcs8_pkcs1_and_spki_round_trip_with_a_signature() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let generated = Jwk::generate(Alg::RS256, "g", "sig").unwrap();
        // Rebuild the rsa crate's key from the generated JWK's members.
        let n = |m: &Option<String>| {
            rsa::BigUint::from_bytes_be(&super::super::b64url_decode(m.as_ref().unwrap()).unwrap())
        };
        let key = rsa::RsaPrivateKey::from_components(
            n(&generated.n),
            n(&generated.e),
            n(&generated.d),
            vec![n(&generated.p), n(&generated.q)],
        )
        .unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let pkcs1 = key.to_pkcs1_der().unwrap();
        let spki = key.to_public_key().to_public_key_der().unwrap();
        for doc in
            [pem("PRIVATE KEY", pkcs8.as_bytes()), pkcs8.as_bytes().to_vec(), pem("RSA PRIVATE KEY", pkcs1.as_bytes())]
        {
            let j = jwk_from_document(&doc, Alg::RS256, "k1", "sig").unwrap();
            assert_eq!(
                (j.n.clone(), j.d.clone(), j.qi.clone()),
                (generated.n.clone(), generated.d.clone(), generated.qi.clone())
            );
            assert_eq!((j.kid.as_str(), j.alg.as_deref(), j.use_.as_deref()), ("k1", Some("RS256"), Some("sig")));
        }
        let public = jwk_from_document(&pem("PUBLIC KEY", spki.as_bytes()), Alg::RS256, "k2", "sig").unwrap();
        assert!(!public.is_private());
        assert_eq!(public.n, generated.n);
        // The wrong algorithm for the document is an error, not a guess.
        assert!(jwk_from_document(&pem("PRIVATE KEY", pkcs8.as_bytes()), Alg::ES256, "k", "sig").is_err());
        assert!(jwk_from_document(b"not a key", Alg::RS256, "k", "sig").is_err());
        assert!(jwk_from_document(
            b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            Alg::RS256,
            "k",
            "sig"
        )
        .is_err());
    }

    #[test]
    fn p256_and_ed25519_from_pkcs8_and_their_public_halves() {
        use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as P256};
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&P256, &rng).unwrap();
        let j = jwk_from_document(&pem("PRIVATE KEY", doc.as_ref()), Alg::ES256, "e", "sig").unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&P256, doc.as_ref(), &rng).unwrap();
        assert_eq!(j.x.as_deref(), Some(b64url_encode(&pair.public_key().as_ref()[1..33]).as_str()));
        assert!(j.is_private());
        // SPKI of the same point.
        let mut spki = vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08];
        spki.extend_from_slice(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00]);
        spki.extend_from_slice(pair.public_key().as_ref());
        let p = jwk_from_document(&pem("PUBLIC KEY", &spki), Alg::ES256, "e", "sig").unwrap();
        assert_eq!((p.x, p.y, p.d), (j.x.clone(), j.y.clone(), None));

        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let j = jwk_from_document(doc.as_ref(), Alg::EdDSA, "o", "sig").unwrap();
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref()).unwrap();
        assert_eq!(j.x.as_deref(), Some(b64url_encode(pair.public_key().as_ref()).as_str()));
        assert!(j.d.is_some());
        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(pair.public_key().as_ref());
        let p = jwk_from_document(&spki, Alg::EdDSA, "o", "sig").unwrap();
        assert_eq!(p.x, j.x);
        assert!(!p.is_private());
    }
}
