//! The certificate request: PEM or DER, its signature checked, its keys and certname read.

use std::fmt;
use std::io::Read;

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::error::X509Error;
use x509_parser::pem::Pem;

use super::error::AutosignError;

/// PKCS#9 challengePassword.
pub const CHALLENGE_PASSWORD_OID: &str = "1.2.840.113549.1.9.7";

/// Puppet's `pp_preshared_key` extension request.
pub const PP_PRESHARED_KEY_OID: &str = "1.3.6.1.4.1.34380.1.1.4";

/// Puppet's CSRs are about 2 KiB; anything this large is not one.
pub const MAX_CSR_BYTES: usize = 256 * 1024;

/// Whether the CSR's signature was made with the key it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Invalid,
    /// An algorithm that x509-parser (with ring) cannot check, e.g. RSA under 2048 bits.
    Unsupported,
}

/// What the policy reads from a certificate request.
#[derive(Clone, PartialEq, Eq)]
pub struct Csr {
    /// Every CN of the subject (a proper request has exactly one).
    pub common_names: Vec<String>,
    /// The values of every `challengePassword` attribute.
    pub challenge_passwords: Vec<Vec<u8>>,
    /// The values of every `pp_preshared_key` extension request: the string inside the DER
    /// value, or the raw bytes when the value is not one DER string.
    pub pp_preshared_keys: Vec<Vec<u8>>,
    /// The instance identity document and its PKCS#7 signature, as the custom attributes
    /// carry them (base64 text), when the request has them.
    pub identity_document: Option<Vec<u8>>,
    pub identity_signature: Option<Vec<u8>>,
    pub signature: SignatureCheck,
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csr")
            .field("common_names", &self.common_names)
            .field("challenge_passwords", &self.challenge_passwords.len())
            .field("pp_preshared_keys", &self.pp_preshared_keys.len())
            .field("signature", &self.signature)
            .finish()
    }
}

pub fn invalid_csr(reason: impl Into<String>) -> AutosignError {
    AutosignError::InvalidCsr {
        reason: reason.into(),
    }
}

/// Parses the one PEM certificate request puppetserver sends.
pub fn parse_csr(pem: &[u8]) -> Result<Csr, AutosignError> {
    let mut blocks = Pem::iter_from_buffer(pem);
    let block = match blocks.next() {
        None => return Err(invalid_csr("no PEM block on standard input")),
        Some(Err(e)) => return Err(invalid_csr(format!("bad PEM: {e}"))),
        Some(Ok(block)) => block,
    };
    if blocks.next().is_some() {
        return Err(invalid_csr(
            "more than one PEM block; expected exactly one CSR",
        ));
    }
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(invalid_csr(format!(
            "a PEM block labelled {:?}, expected CERTIFICATE REQUEST",
            block.label
        )));
    }
    parse_csr_der(&block.contents)
}

/// Parses a DER certificate request.
pub fn parse_csr_der(der: &[u8]) -> Result<Csr, AutosignError> {
    let (rest, request) = X509CertificationRequest::from_der(der)
        .map_err(|e| invalid_csr(format!("not a PKCS#10 certificate request: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid_csr("trailing bytes after the certificate request"));
    }
    let info = &request.certification_request_info;
    let mut common_names = Vec::new();
    for cn in info.subject.iter_common_name() {
        let text = cn
            .as_str()
            .map_err(|e| invalid_csr(format!("the subject's CN is not text: {e}")))?;
        common_names.push(text.to_owned());
    }
    let mut challenge_passwords = Vec::new();
    let mut pp_preshared_keys = Vec::new();
    let mut identity_document = None;
    let mut identity_signature = None;
    for attribute in info.iter_attributes() {
        match attribute.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(password) => {
                challenge_passwords.push(password.0.as_bytes().to_vec());
            }
            ParsedCriAttribute::ExtensionRequest(request) => {
                for extension in &request.extensions {
                    if extension.oid.to_id_string() == PP_PRESHARED_KEY_OID {
                        pp_preshared_keys.push(extension_string(extension.value));
                    }
                }
            }
            ParsedCriAttribute::UnsupportedAttribute => {
                // x509-parser keeps no value for attributes it does not know: the value is
                // read from the request's own bytes, after the attribute's OID.
                let slot = match attribute.oid.as_bytes() {
                    super::identity::DOCUMENT_OID_DER => &mut identity_document,
                    super::identity::SIGNATURE_OID_DER => &mut identity_signature,
                    _ => continue,
                };
                if slot.is_none() {
                    *slot = attribute_value(der, attribute.oid.as_bytes());
                }
            }
        }
    }
    let signature = match request.verify_signature() {
        Ok(()) => SignatureCheck::Valid,
        Err(X509Error::SignatureUnsupportedAlgorithm) => SignatureCheck::Unsupported,
        Err(_) => SignatureCheck::Invalid,
    };
    Ok(Csr {
        common_names,
        challenge_passwords,
        pp_preshared_keys,
        identity_document,
        identity_signature,
        signature,
    })
}

/// The string value of the attribute whose OID has the DER contents `oid`: the SET of one
/// string that follows the OID in the request. The first such OID counts; the request's
/// signature covers these bytes.
fn attribute_value(der: &[u8], oid: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(oid.len()).ok().filter(|l| *l < 0x80)?;
    let mut needle = vec![0x06, len];
    needle.extend_from_slice(oid);
    let at = der
        .windows(needle.len())
        .position(|w| w == needle.as_slice())?;
    let (_, set) = Any::from_der(&der[at + needle.len()..]).ok()?;
    (set.tag() == Tag::Set).then(|| extension_string(set.data))
}

/// Puppet puts a DER UTF8String inside the extension's OCTET STRING; other tools may put the
/// text itself there.
pub fn extension_string(value: &[u8]) -> Vec<u8> {
    if let Ok((rest, any)) = Any::from_der(value) {
        let string_tags = [
            Tag::Utf8String,
            Tag::PrintableString,
            Tag::Ia5String,
            Tag::VisibleString,
        ];
        if rest.is_empty()
            && any.class() == Class::Universal
            && !any.header.is_constructed()
            && string_tags.contains(&any.tag())
        {
            return any.data.to_vec();
        }
    }
    value.to_vec()
}

/// Reads the CSR bytes, bounded.
pub fn read_csr(input: &mut dyn Read) -> Result<Vec<u8>, AutosignError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_CSR_BYTES).unwrap_or(u64::MAX);
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(AutosignError::ReadCsr)?;
    if bytes.len() > MAX_CSR_BYTES {
        return Err(AutosignError::CsrTooLarge {
            limit: MAX_CSR_BYTES,
        });
    }
    Ok(bytes)
}
