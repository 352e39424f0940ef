//! The signed instance identity rule (`aws_identity`): the CSR carries EC2's instance identity
//! document and its `rsa2048` PKCS#7 signature as custom attributes (never extension requests:
//! those would be copied into the certificate), and the CA verifies the signature against
//! AWS's public certificates before it trusts a word of the document.
//!
//! What is checked, each failure naming itself: the PKCS#7 is DER SignedData whose signer
//! verifies under one of the configured certificates (RSA, SHA-256; with signed attributes,
//! their message digest must be the document's), the signed content is the document that was
//! sent, `instanceId` is the certname's instance id, `accountId` is allowed, the region when
//! configured, `pendingTime` younger than the maximum age, and this instance id was not
//! signed before (recorded by the caller, [`super::decide`]).

use std::time::{Duration, SystemTime};

use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, Class, FromDer, Oid, Tag};

/// The custom attribute with the instance identity document (base64 of its bytes): a UUID OID
/// (X.667, `2.25.UUID`) of cloudcfg's own, so no registry is needed.
pub const DOCUMENT_OID: &str = "2.25.113021915545913526792366058188791605927.1";
/// The custom attribute with the `rsa2048` PKCS#7 signature (base64 DER, as IMDS serves it).
pub const SIGNATURE_OID: &str = "2.25.113021915545913526792366058188791605927.2";

/// The DER contents of the two OIDs (as `openssl asn1parse -genstr OID:...` encodes them):
/// their UUID arc is wider than 64 bits, which the OID type prints only in hex, so they are
/// compared as bytes.
pub const DOCUMENT_OID_DER: &[u8] = &[
    0x69, 0x81, 0xaa, 0x87, 0x9d, 0xaa, 0xb6, 0xfc, 0x8a, 0xbf, 0xed, 0x80, 0xa1, 0xab, 0xf4, 0xad,
    0xc9, 0xaf, 0xd5, 0x27, 0x01,
];
pub const SIGNATURE_OID_DER: &[u8] = &[
    0x69, 0x81, 0xaa, 0x87, 0x9d, 0xaa, 0xb6, 0xfc, 0x8a, 0xbf, 0xed, 0x80, 0xa1, 0xab, 0xf4, 0xad,
    0xc9, 0xaf, 0xd5, 0x27, 0x02,
];

/// More than any identity document; a bigger one is refused before it is parsed.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;
pub const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

/// The facts of a verified document that the rule compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub account_id: String,
    pub region: String,
    pub pending_time: SystemTime,
}

/// The rule as the policy configures it.
pub struct IdentityRule {
    /// The RSA keys of AWS's (or a test CA's) signing certificates.
    pub keys: Vec<rsa::RsaPublicKey>,
    pub accounts: Vec<String>,
    pub regions: Option<Vec<String>>,
    pub max_age: Duration,
}

fn der_parts(input: &[u8]) -> Result<(Any<'_>, &[u8]), String> {
    Any::from_der(input)
        .map(|(rest, any)| (any, rest))
        .map_err(|e| format!("not DER: {e}"))
}

/// The children of a constructed element.
fn children<'a>(any: &Any<'a>) -> Result<Vec<Any<'a>>, String> {
    let mut out = Vec::new();
    let mut rest: &'a [u8] = any.data;
    while !rest.is_empty() {
        let (after, child) = Any::from_der(rest).map_err(|e| format!("not DER: {e}"))?;
        out.push(child);
        rest = after;
    }
    Ok(out)
}

fn oid_of(any: &Any<'_>) -> Result<String, String> {
    if any.tag() != Tag::Oid {
        return Err("an OID was expected".into());
    }
    Ok(Oid::new(std::borrow::Cow::Borrowed(any.data)).to_id_string())
}

/// What the PKCS#7 SignedData holds: the signed content, the signer's signature and what it
/// signs (the DER SET of signed attributes, or the content itself).
struct Signed<'a> {
    content: &'a [u8],
    signed_bytes: Vec<u8>,
    message_digest: Option<Vec<u8>>,
    signature: &'a [u8],
}

fn parse_signed_data(der: &[u8]) -> Result<Signed<'_>, String> {
    let (info, rest) = der_parts(der)?;
    if !rest.is_empty() || info.tag() != Tag::Sequence {
        return Err("not a PKCS#7 ContentInfo".into());
    }
    let info = children(&info)?;
    if info.len() != 2 || oid_of(&info[0])? != OID_SIGNED_DATA {
        return Err("not PKCS#7 SignedData".into());
    }
    // [0] EXPLICIT SignedData
    let explicit = children(&info[1])?;
    let signed_data = explicit.first().ok_or("empty SignedData")?;
    let parts = children(signed_data)?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos
    let encap = children(parts.get(2).ok_or("no encapsulated content")?)?;
    let econtent = encap
        .get(1)
        .ok_or("the signature is detached: the document is not inside")?;
    let octets = children(econtent)?;
    let content = octets
        .first()
        .filter(|o| o.tag() == Tag::OctetString)
        .ok_or("the signed content is not an OCTET STRING")?
        .data;
    let signer_infos = parts.last().ok_or("no signerInfos")?;
    let signers = children(signer_infos)?;
    let signer = signers.first().ok_or("no signer")?;
    let fields = children(signer)?;
    // version, sid, digestAlgorithm, [0] signedAttrs?, signatureAlgorithm, signature, ...
    let mut signed_bytes = content.to_vec();
    let mut message_digest = None;
    let mut index = 3;
    if let Some(attrs) = fields.get(3)
        && attrs.class() == Class::ContextSpecific
        && attrs.tag() == Tag(0)
    {
        // What was signed is the attributes as a DER SET (tag 0x31), not as [0].
        let mut set = Vec::with_capacity(attrs.data.len() + 4);
        set.push(0x31);
        let len = attrs.data.len();
        match len {
            0..=0x7f => set.push(len as u8),
            0x80..=0xff => set.extend([0x81, len as u8]),
            _ => set.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        set.extend_from_slice(attrs.data);
        signed_bytes = set;
        for attr in children(attrs)? {
            let kv = children(&attr)?;
            if kv.len() == 2 && oid_of(&kv[0])? == OID_MESSAGE_DIGEST {
                let values = children(&kv[1])?;
                message_digest = values.first().map(|v| v.data.to_vec());
            }
        }
        index = 4;
    }
    let signature = fields
        .get(index + 1)
        .filter(|s| s.tag() == Tag::OctetString)
        .ok_or("no signature in the signer")?
        .data;
    Ok(Signed {
        content,
        signed_bytes,
        message_digest,
        signature,
    })
}

/// Verifies `signature_der` over `document` with one of `keys`; returns the document's facts.
pub fn verify(
    document: &[u8],
    signature_der: &[u8],
    keys: &[rsa::RsaPublicKey],
) -> Result<Identity, String> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    let signed = parse_signed_data(signature_der).map_err(|e| format!("signature: {e}"))?;
    if signed.content != document {
        return Err("signature: it signs another document than the one sent".into());
    }
    if let Some(digest) = &signed.message_digest
        && digest.as_slice() != Sha256::digest(signed.content).as_slice()
    {
        return Err("signature: its message digest is not the document's".into());
    }
    let signature = Signature::try_from(signed.signature).map_err(|e| format!("signature: {e}"))?;
    let trusted = keys.iter().any(|key| {
        VerifyingKey::<Sha256>::new(key.clone())
            .verify(&signed.signed_bytes, &signature)
            .is_ok()
    });
    if !trusted {
        return Err("signature: not made by a configured signing certificate".into());
    }
    let json: serde_json::Value =
        serde_json::from_slice(document).map_err(|e| format!("document: not JSON: {e}"))?;
    let text = |name: &str| {
        json.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("document: no {name}"))
    };
    let pending = text("pendingTime")?;
    Ok(Identity {
        instance_id: text("instanceId")?,
        account_id: text("accountId")?,
        region: text("region")?,
        pending_time: humantime::parse_rfc3339_weak(&pending)
            .map_err(|e| format!("document: pendingTime {pending:?}: {e}"))?,
    })
}

/// The RSA keys of the PEM certificates in `pem`.
pub fn certificate_keys(pem: &[u8]) -> Result<Vec<rsa::RsaPublicKey>, String> {
    let mut keys = Vec::new();
    for item in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let item = item.map_err(|e| format!("not PEM: {e}"))?;
        let cert = item
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let key = rsa::RsaPublicKey::from_public_key_der(cert.public_key().raw)
            .map_err(|e| format!("not an RSA certificate: {e}"))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("no certificate".into());
    }
    Ok(keys)
}

impl IdentityRule {
    /// Every check after the signature, for the certname's instance id; `Err` names the check.
    pub fn check(
        &self,
        identity: &Identity,
        instance_id: &str,
        now: SystemTime,
    ) -> Result<(), String> {
        if identity.instance_id != instance_id {
            return Err(format!(
                "instanceId {} is not the certname's instance id {instance_id}",
                identity.instance_id
            ));
        }
        if !self.accounts.contains(&identity.account_id) {
            return Err(format!(
                "accountId {} is not an allowed account",
                identity.account_id
            ));
        }
        if let Some(regions) = &self.regions
            && !regions.contains(&identity.region)
        {
            return Err(format!(
                "region {} is not an allowed region",
                identity.region
            ));
        }
        match now.duration_since(identity.pending_time) {
            Ok(age) if age > self.max_age => Err(format!(
                "pendingTime is {} s old, more than {} s",
                age.as_secs(),
                self.max_age.as_secs()
            )),
            _ => Ok(()),
        }
    }
}
