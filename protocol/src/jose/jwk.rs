//! JSON Web Keys (RFC 7517) for RS256, ES256 and EdDSA: generation, public projection and admin-upload
//! validation. Invariants: members serialize in alphabetical order (as Hydra emits them), `None` members
//! are omitted, unknown members are ignored, and `Debug` never prints private members.

use serde::{Deserialize, Serialize};

use super::{b64url_decode, b64url_encode, JoseError};

/// The signature algorithms this server issues and accepts.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    /// Every signing algorithm, in the order discovery lists them.
    pub const ALL: [Alg; 9] =
        [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA];

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// Whether this is one of the RSA algorithms (PKCS #1 v1.5 or PSS).
    pub fn is_rsa(self) -> bool {
        matches!(self, Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512)
    }

    /// The JWK `kty` (and curve, where there is one) a key must have to be used with this algorithm.
    pub(crate) fn fits(self, jwk: &Jwk) -> bool {
        match self {
            a if a.is_rsa() => jwk.kty == "RSA",
            Alg::ES256 => jwk.kty == "EC" && jwk.crv.as_deref() == Some("P-256"),
            Alg::ES384 => jwk.kty == "EC" && jwk.crv.as_deref() == Some("P-384"),
            _ => jwk.kty == "OKP" && jwk.crv.as_deref() == Some("Ed25519"),
        }
    }

    /// The algorithm a key of this type implies when its JWK names none.
    pub(crate) fn natural(jwk: &Jwk) -> Option<Alg> {
        match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => Some(Alg::RS256),
            ("EC", Some("P-256")) => Some(Alg::ES256),
            ("EC", Some("P-384")) => Some(Alg::ES384),
            ("OKP", Some("Ed25519")) => Some(Alg::EdDSA),
            _ => None,
        }
    }

    /// The algorithm a key is for: its own `alg` if set (an RSA key may name any RSA algorithm;
    /// an EC or OKP key only its curve's), else the one its type implies.
    pub fn of_key(jwk: &Jwk) -> Result<Alg, JoseError> {
        let natural = Alg::natural(jwk).ok_or(JoseError::InvalidKey("unsupported kty or curve"))?;
        match jwk.alg.as_deref() {
            None => Ok(natural),
            Some(a) => match Alg::parse(a) {
                Some(alg) if alg.fits(jwk) => Ok(alg),
                Some(_) => Err(JoseError::InvalidKey("alg does not match kty")),
                None => Err(JoseError::UnsupportedAlg),
            },
        }
    }
}

/// Field order is alphabetical on purpose: serde_json writes struct fields in declaration order.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    #[serde(default)]
    pub kid: String,
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl std::fmt::Debug for Jwk {
    // Hand-written so that logging a key can never print d, p, q, dp, dq, qi or k.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .field("use", &self.use_)
            .field("private", &self.is_private())
            .finish()
    }
}

/// Adapts ring's system RNG to the `rand_core` 0.6 traits the `rsa` crate wants. rsa 0.9 does not
/// enable `rand_core/getrandom` by default, so `OsRng` is not available without an extra dependency.
/// `fill_bytes` cannot return an error, so a failure is remembered and checked after generation.
struct RingRng {
    inner: ring::rand::SystemRandom,
    failed: bool,
}

impl rsa::rand_core::RngCore for RingRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use ring::rand::SecureRandom;
        if self.inner.fill(dest).is_err() {
            self.failed = true;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for RingRng {}

impl Jwk {
    /// A key with only its `kty` set (the members are filled in by whoever builds it).
    pub(crate) fn bare(kty: &str) -> Jwk {
        Jwk {
            alg: None,
            crv: None,
            d: None,
            dp: None,
            dq: None,
            e: None,
            k: None,
            kid: String::new(),
            kty: kty.to_owned(),
            n: None,
            p: None,
            q: None,
            qi: None,
            use_: None,
            x: None,
            x5c: None,
            y: None,
        }
    }

    fn empty(kty: &str, alg: Alg, kid: &str, use_: &str) -> Jwk {
        Jwk { alg: Some(alg.as_str().to_owned()), kid: kid.to_owned(), use_: Some(use_.to_owned()), ..Jwk::bare(kty) }
    }

    /// Generates a fresh private key for `alg`.
    pub fn generate(alg: Alg, kid: &str, use_: &str) -> Result<Jwk, JoseError> {
        match alg {
            a if a.is_rsa() => generate_rsa(a, kid, use_),
            Alg::ES256 | Alg::ES384 => generate_ec(alg, kid, use_),
            _ => generate_ed25519(kid, use_),
        }
    }

    /// The key as it may be published: every private member removed.
    pub fn public(&self) -> Jwk {
        Jwk { d: None, p: None, q: None, dp: None, dq: None, qi: None, k: None, ..self.clone() }
    }

    pub fn is_private(&self) -> bool {
        [&self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.k].iter().any(|m| m.is_some())
    }

    /// Checks a key supplied from outside (admin upload) before it is stored or used.
    pub fn validate(&self) -> Result<(), JoseError> {
        let natural = match self.kty.as_str() {
            "RSA" => {
                let n = member(&self.n, "missing n")?;
                let e = member(&self.e, "missing e")?;
                if bit_len(&n) < 2048 {
                    return Err(JoseError::InvalidKey("RSA modulus shorter than 2048 bits"));
                }
                if bit_len(&e) == 0 {
                    return Err(JoseError::InvalidKey("RSA exponent is zero"));
                }
                Alg::RS256
            }
            "EC" => {
                let (size, alg) = match self.crv.as_deref() {
                    Some("P-256") => (32, Alg::ES256),
                    Some("P-384") => (48, Alg::ES384),
                    _ => return Err(JoseError::InvalidKey("EC curve must be P-256 or P-384")),
                };
                if member(&self.x, "missing x")?.len() != size || member(&self.y, "missing y")?.len() != size {
                    return Err(JoseError::InvalidKey("EC coordinates do not have the curve's size"));
                }
                alg
            }
            "OKP" => {
                if self.crv.as_deref() != Some("Ed25519") {
                    return Err(JoseError::InvalidKey("OKP curve must be Ed25519"));
                }
                if member(&self.x, "missing x")?.len() != 32 {
                    return Err(JoseError::InvalidKey("Ed25519 public key must be 32 bytes"));
                }
                Alg::EdDSA
            }
            _ => return Err(JoseError::InvalidKey("unsupported kty")),
        };
        if let Some(alg) = &self.alg {
            match Alg::parse(alg) {
                Some(a) if a == natural || (a.is_rsa() && natural.is_rsa()) => {}
                Some(_) => return Err(JoseError::InvalidKey("alg does not match kty")),
                // An encryption key names an encryption algorithm (RSA-OAEP, ECDH-ES, …); it is
                // stored and returned, never used to sign.
                None if self.use_.as_deref() == Some("enc") => {}
                None => return Err(JoseError::UnsupportedAlg),
            }
        }
        if self.is_private() {
            if self.k.is_some() {
                return Err(JoseError::InvalidKey("symmetric member k not allowed"));
            }
            // An encryption key's alg names no signature: its parts are checked as its type's.
            if self.use_.as_deref() == Some("enc") {
                super::jws::check_private_consistency(&Jwk { alg: None, ..self.clone() })?;
            } else {
                super::jws::check_private_consistency(self)?;
            }
        }
        Ok(())
    }
}

/// Decodes a required member; the error names the member, not its value.
pub(crate) fn member(value: &Option<String>, missing: &'static str) -> Result<Vec<u8>, JoseError> {
    match value {
        Some(v) => b64url_decode(v),
        None => Err(JoseError::InvalidKey(missing)),
    }
}

/// Bit length of a big-endian unsigned integer, ignoring leading zero bytes.
fn bit_len(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
        None => 0,
    }
}

fn generate_rsa(alg: Alg, kid: &str, use_: &str) -> Result<Jwk, JoseError> {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};

    let mut rng = RingRng { inner: ring::rand::SystemRandom::new(), failed: false };
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|_| JoseError::Crypto)?;
    if rng.failed {
        return Err(JoseError::Crypto);
    }
    let [p, q] = key.primes() else {
        return Err(JoseError::Crypto);
    };
    let one = rsa::BigUint::from(1u32);
    let dp = key.d() % (p - &one);
    let dq = key.d() % (q - &one);
    // crt_coefficient is q^-1 mod p with p = primes[0], which is the qi JWK and ring expect.
    let qi = key.crt_coefficient().ok_or(JoseError::Crypto)?;
    let enc = |v: &rsa::BigUint| Some(b64url_encode(&v.to_bytes_be()));
    Ok(Jwk {
        n: enc(key.n()),
        e: enc(key.e()),
        d: enc(key.d()),
        p: enc(p),
        q: enc(q),
        dp: enc(&dp),
        dq: enc(&dq),
        qi: enc(&qi),
        ..Jwk::empty("RSA", alg, kid, use_)
    })
}

fn generate_ec(alg: Alg, kid: &str, use_: &str) -> Result<Jwk, JoseError> {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};

    let rng = ring::rand::SystemRandom::new();
    let (signing, curve) = match alg {
        Alg::ES384 => (&ECDSA_P384_SHA384_FIXED_SIGNING, der::Curve::P384),
        _ => (&ECDSA_P256_SHA256_FIXED_SIGNING, der::Curve::P256),
    };
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).map_err(|_| JoseError::Crypto)?;
    let (scalar, point) = der::ec_from_pkcs8(pkcs8.as_ref(), curve)?;
    let n = curve.size();
    Ok(Jwk {
        crv: Some(curve.name().to_owned()),
        d: Some(b64url_encode(scalar)),
        x: Some(b64url_encode(&point[1..1 + n])),
        y: Some(b64url_encode(&point[1 + n..])),
        ..Jwk::empty("EC", alg, kid, use_)
    })
}

fn generate_ed25519(kid: &str, use_: &str) -> Result<Jwk, JoseError> {
    use ring::rand::SecureRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut seed).map_err(|_| JoseError::Crypto)?;
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| JoseError::Crypto)?;
    Ok(Jwk {
        crv: Some("Ed25519".to_owned()),
        d: Some(b64url_encode(&seed)),
        x: Some(b64url_encode(pair.public_key().as_ref())),
        ..Jwk::empty("OKP", Alg::EdDSA, kid, use_)
    })
}

/// Just enough DER to pull the key out of ring's P-256 PKCS#8 document (RFC 5208 + RFC 5915).
/// ring offers no accessor for the private scalar, so we walk the structure ourselves.
pub(crate) mod der {
    use super::JoseError;

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const BIT_STRING: u8 = 0x03;
    const CONTEXT_1: u8 = 0xa1;

    const BAD: JoseError = JoseError::InvalidKey("unexpected PKCS#8 structure");

    /// Splits one TLV off the front of `input`: (tag, value, rest). Only definite lengths up to
    /// two length bytes are accepted, which is far more than any key document needs.
    fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), JoseError> {
        let (&tag, rest) = input.split_first().ok_or(BAD)?;
        let (&first, rest) = rest.split_first().ok_or(BAD)?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81 => {
                let (&b, rest) = rest.split_first().ok_or(BAD)?;
                (usize::from(b), rest)
            }
            0x82 => {
                let hi = *rest.first().ok_or(BAD)?;
                let lo = *rest.get(1).ok_or(BAD)?;
                (usize::from(hi) << 8 | usize::from(lo), rest.get(2..).ok_or(BAD)?)
            }
            _ => return Err(BAD),
        };
        if rest.len() < len {
            return Err(BAD);
        }
        let (value, rest) = rest.split_at(len);
        Ok((tag, value, rest))
    }

    fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), JoseError> {
        let (tag, value, rest) = tlv(input)?;
        if tag != want {
            return Err(BAD);
        }
        Ok((value, rest))
    }

    /// Returns (32-byte private scalar, 65-byte uncompressed public point).
    /// The NIST curves keys may be on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Curve {
        P256,
        P384,
    }

    impl Curve {
        /// The byte length of a scalar and of each coordinate.
        pub fn size(self) -> usize {
            match self {
                Curve::P256 => 32,
                Curve::P384 => 48,
            }
        }

        pub fn name(self) -> &'static str {
            match self {
                Curve::P256 => "P-256",
                Curve::P384 => "P-384",
            }
        }
    }

    /// PKCS#8 `PrivateKeyInfo` of an EC key on `curve`: (scalar, uncompressed point).
    pub(crate) fn ec_from_pkcs8(doc: &[u8], curve: Curve) -> Result<(&[u8], &[u8]), JoseError> {
        // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING, ... }
        let (info, _) = expect(doc, SEQUENCE)?;
        let (_, rest) = expect(info, INTEGER)?;
        let (_, rest) = expect(rest, SEQUENCE)?;
        let (ec_doc, _) = expect(rest, OCTET_STRING)?;
        ec_from_sec1(ec_doc, curve)
    }

    /// SEC1 `ECPrivateKey` of P-256 (an `EC PRIVATE KEY` PEM, or the inside of a PKCS#8 one):
    /// (32-byte scalar, 65-byte point).
    /// SEC1 `ECPrivateKey` on `curve`: (scalar, uncompressed point).
    pub(crate) fn ec_from_sec1(doc: &[u8], curve: Curve) -> Result<(&[u8], &[u8]), JoseError> {
        // ECPrivateKey ::= SEQUENCE { version INTEGER, privateKey OCTET STRING,
        //                             parameters [0] OPTIONAL, publicKey [1] BIT STRING OPTIONAL }
        let (ec, _) = expect(doc, SEQUENCE)?;
        let (_, rest) = expect(ec, INTEGER)?;
        let (scalar, mut rest) = expect(rest, OCTET_STRING)?;
        let mut point = None;
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest)?;
            if tag == CONTEXT_1 {
                let (bits, _) = expect(value, BIT_STRING)?;
                match bits.split_first() {
                    Some((0, p)) => point = Some(p),
                    _ => return Err(BAD),
                }
            }
            rest = next;
        }
        let point = point.ok_or(BAD)?;
        let n = curve.size();
        if scalar.len() != n || point.len() != 1 + 2 * n || point[0] != 0x04 {
            return Err(BAD);
        }
        Ok((scalar, point))
    }

    /// The key bits of a `SubjectPublicKeyInfo` (a `PUBLIC KEY` PEM), without the unused-bits byte.
    pub(crate) fn spki_key(doc: &[u8]) -> Result<&[u8], JoseError> {
        let (spki, _) = expect(doc, SEQUENCE)?;
        let (_, rest) = expect(spki, SEQUENCE)?;
        let (bits, _) = expect(rest, BIT_STRING)?;
        match bits.split_first() {
            Some((0, key)) => Ok(key),
            _ => Err(BAD),
        }
    }

    /// The 32-byte seed of an Ed25519 PKCS#8 document (RFC 8410: the private key is an OCTET
    /// STRING inside the `privateKey` OCTET STRING).
    pub(crate) fn ed25519_seed_from_pkcs8(doc: &[u8]) -> Result<&[u8], JoseError> {
        const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];
        let (info, _) = expect(doc, SEQUENCE)?;
        let (_, rest) = expect(info, INTEGER)?;
        let (algorithm, rest) = expect(rest, SEQUENCE)?;
        let (oid, _) = expect(algorithm, 0x06)?;
        if oid != ED25519_OID {
            return Err(BAD);
        }
        let (inner, _) = expect(rest, OCTET_STRING)?;
        let (seed, _) = expect(inner, OCTET_STRING)?;
        if seed.len() != 32 {
            return Err(BAD);
        }
        Ok(seed)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn truncated_and_garbage_documents_are_rejected() {
            for curve in [Curve::P256, Curve::P384] {
                assert_eq!(ec_from_pkcs8(&[], curve), Err(BAD));
                assert_eq!(ec_from_pkcs8(&[0x30, 0x82, 0xff], curve), Err(BAD));
                assert_eq!(ec_from_pkcs8(&[0x30, 0x05, 0x02, 0x01], curve), Err(BAD));
                assert_eq!(ec_from_pkcs8(&[0x04, 0x00], curve), Err(BAD));
            }
        }

        #[test]
        fn ring_document_yields_matching_public_point() {
            use ring::signature::{
                EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as P256, ECDSA_P384_SHA384_FIXED_SIGNING as P384,
            };
            let rng = ring::rand::SystemRandom::new();
            for (alg, curve, other) in [(&P256, Curve::P256, Curve::P384), (&P384, Curve::P384, Curve::P256)] {
                let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
                let (scalar, point) = ec_from_pkcs8(doc.as_ref(), curve).unwrap();
                let pair = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap();
                assert_eq!(point, pair.public_key().as_ref());
                assert!(EcdsaKeyPair::from_private_key_and_public_key(alg, scalar, point, &rng).is_ok());
                // A key of the other curve is not taken for this one.
                assert!(ec_from_pkcs8(doc.as_ref(), other).is_err());
                // Every strict prefix of the document must fail cleanly, never panic.
                for cut in 0..doc.as_ref().len() {
                    assert!(ec_from_pkcs8(&doc.as_ref()[..cut], curve).is_err());
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// RSA generation is slow in debug builds; share one key across tests.
    pub(crate) fn rsa_key() -> &'static Jwk {
        static KEY: OnceLock<Jwk> = OnceLock::new();
        KEY.get_or_init(|| Jwk::generate(Alg::RS256, "rsa-1", "sig").unwrap())
    }

    #[test]
    fn alg_parse_round_trips() {
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(Alg::parse("none"), None);
        assert_eq!(Alg::parse("HS256"), None);
        assert_eq!(Alg::parse("rs256"), None);
    }

    #[test]
    fn generated_rsa_json_is_alphabetical() {
        let json = serde_json::to_string(rsa_key()).unwrap();
        let order = ["alg", "d", "dp", "dq", "e", "kid", "kty", "n", "p", "q", "qi", "use"];
        let positions: Vec<usize> =
            order.iter().map(|m| json.find(&format!("\"{m}\":")).unwrap_or_else(|| panic!("missing {m}"))).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(json.starts_with("{\"alg\":\"RS256\","));
        assert!(json.contains("\"use\":\"sig\""));
        assert!(json.contains("\"kty\":\"RSA\""));
        assert!(!json.contains("\"x5c\"") && !json.contains("\"crv\"") && !json.contains("null"));
        let n = b64url_decode(rsa_key().n.as_deref().unwrap()).unwrap();
        assert_eq!(bit_len(&n), 2048);
        assert!(rsa_key().validate().is_ok());
    }

    #[test]
    fn generated_keys_have_expected_shape_and_validate() {
        let ec = Jwk::generate(Alg::ES256, "ec-1", "sig").unwrap();
        assert_eq!((ec.kty.as_str(), ec.crv.as_deref()), ("EC", Some("P-256")));
        assert_eq!(b64url_decode(ec.d.as_deref().unwrap()).unwrap().len(), 32);
        assert_eq!(b64url_decode(ec.y.as_deref().unwrap()).unwrap().len(), 32);
        ec.validate().unwrap();
        let ed = Jwk::generate(Alg::EdDSA, "ed-1", "sig").unwrap();
        assert_eq!((ed.kty.as_str(), ed.crv.as_deref(), ed.alg.as_deref()), ("OKP", Some("Ed25519"), Some("EdDSA")));
        assert_eq!(b64url_decode(ed.x.as_deref().unwrap()).unwrap().len(), 32);
        ed.validate().unwrap();
        ed.public().validate().unwrap();
    }

    #[test]
    fn public_strips_private_members() {
        for key in [rsa_key().clone(), Jwk::generate(Alg::ES256, "e", "sig").unwrap()] {
            assert!(key.is_private());
            let public = key.public();
            assert!(!public.is_private());
            let json = serde_json::to_string(&public).unwrap();
            for m in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(!json.contains(&format!("\"{m}\":")), "{m} leaked");
            }
            assert_eq!(public.kid, key.kid);
        }
    }

    #[test]
    fn debug_hides_private_members() {
        let key = rsa_key();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("rsa-1") && dbg.contains("private: true"));
        assert!(!dbg.contains(key.d.as_deref().unwrap()));
        assert!(!dbg.contains(key.p.as_deref().unwrap()));
    }

    #[test]
    fn deserialize_ignores_unknown_and_defaults_kid() {
        let k: Jwk = serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"AA","key_ops":["verify"]}"#).unwrap();
        assert_eq!(k.kid, "");
        assert_eq!(k.x.as_deref(), Some("AA"));
        assert!(serde_json::from_str::<Jwk>(r#"{"kid":"a"}"#).is_err());
    }

    #[test]
    fn validate_rejects_small_rsa_modulus() {
        let mut k = rsa_key().public();
        k.n = Some(b64url_encode(&[0xc5; 128])); // 1024 bits
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("RSA modulus shorter than 2048 bits")));
        k.n = None;
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("missing n")));
    }

    #[test]
    fn validate_rejects_short_ec_coordinate_and_bad_curve() {
        let good = Jwk::generate(Alg::ES256, "e", "sig").unwrap().public();
        let mut k = good.clone();
        k.x = Some(b64url_encode(&[7; 31]));
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("EC coordinates do not have the curve's size")));
        // P-256 coordinates under the P-384 name, and an unknown curve.
        let mut k = good.clone();
        k.crv = Some("P-384".into());
        assert!(k.validate().is_err());
        k.crv = Some("P-521".into());
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("EC curve must be P-256 or P-384")));
        let mut k = good;
        k.x = Some("not+base64".into());
        assert_eq!(k.validate(), Err(JoseError::Base64));
    }

    #[test]
    fn validate_rejects_alg_kty_mismatch_and_unknown() {
        let mut k = Jwk::generate(Alg::ES256, "e", "sig").unwrap();
        k.alg = Some("RS256".into());
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("alg does not match kty")));
        k.alg = Some("ES384".into());
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("alg does not match kty")));
        // An encryption key may name an encryption algorithm; a signing key may not.
        let mut enc = Jwk::generate(Alg::RS256, "r", "enc").unwrap();
        enc.alg = Some("RSA-OAEP-256".into());
        assert!(enc.validate().is_ok());
        enc.use_ = Some("sig".into());
        assert_eq!(enc.validate(), Err(JoseError::UnsupportedAlg));
        k.alg = Some("HS256".into());
        assert_eq!(k.validate(), Err(JoseError::UnsupportedAlg));
        let mut k = rsa_key().clone();
        k.kty = "oct".into();
        assert_eq!(k.validate(), Err(JoseError::InvalidKey("unsupported kty")));
    }

    #[test]
    fn validate_rejects_mismatched_private_parts() {
        let a = Jwk::generate(Alg::ES256, "a", "sig").unwrap();
        let b = Jwk::generate(Alg::ES256, "b", "sig").unwrap();
        let mixed = Jwk { d: b.d.clone(), ..a.clone() };
        assert!(mixed.validate().is_err());

        let a = Jwk::generate(Alg::EdDSA, "a", "sig").unwrap();
        let b = Jwk::generate(Alg::EdDSA, "b", "sig").unwrap();
        assert!(Jwk { d: b.d.clone(), ..a.clone() }.validate().is_err());

        // RSA: the spec'd case, d taken from another key. ring never uses d, so this only fails
        // because validate checks d against dp/dq itself.
        let other = Jwk::generate(Alg::RS256, "other", "sig").unwrap();
        let rsa = rsa_key();
        assert!(Jwk { d: other.d.clone(), ..rsa.clone() }.validate().is_err());
        assert!(Jwk { n: other.n.clone(), ..rsa.clone() }.validate().is_err());
        assert!(Jwk { dp: other.dp.clone(), ..rsa.clone() }.validate().is_err());
        assert!(Jwk { qi: other.qi.clone(), ..rsa.clone() }.validate().is_err());
    }
}
