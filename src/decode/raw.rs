//! A scalar kept as written, with the type PyYAML would give it: cloud-init hands such values on
//! typed (a `True` in puppet.conf, an integer in csr_attributes.yaml), so writers that must
//! match it need both.

use std::fmt;

use serde::Serialize;
use serde::de::{self, Visitor};

pub(super) const RAW_SCALAR: &str = "__cloudcfg_raw_scalar";

/// How PyYAML would type a scalar: cloud-init hands such values on typed (a `True` in
/// puppet.conf, an integer in csr_attributes.yaml), so writers that must match it need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

/// A scalar kept as written, with the type PyYAML would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawScalar {
    pub text: String,
    pub kind: ScalarKind,
}

impl RawScalar {
    pub fn str(text: impl Into<String>) -> RawScalar {
        RawScalar {
            text: text.into(),
            kind: ScalarKind::Str,
        }
    }
}

impl Serialize for RawScalar {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl schemars::JsonSchema for RawScalar {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "number", "boolean"]})
    }
}

impl<'de> de::Deserialize<'de> for RawScalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawScalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (text, number or boolean)")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawScalar, A::Error> {
                let kind: String = seq.next_element()?.unwrap_or_default();
                let text: String = seq.next_element()?.unwrap_or_default();
                let kind = match kind.as_str() {
                    "null" => ScalarKind::Null,
                    "bool" => ScalarKind::Bool,
                    "int" => ScalarKind::Int,
                    "float" => ScalarKind::Float,
                    _ => ScalarKind::Str,
                };
                Ok(RawScalar { text, kind })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScalar, E> {
                Ok(RawScalar::str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawScalar, E> {
                Ok(RawScalar {
                    text: v.to_string(),
                    kind: ScalarKind::Bool,
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawScalar, E> {
                Ok(RawScalar {
                    text: v.to_string(),
                    kind: ScalarKind::Int,
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawScalar, E> {
                Ok(RawScalar {
                    text: v.to_string(),
                    kind: ScalarKind::Int,
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawScalar, E> {
                Ok(RawScalar {
                    text: v.to_string(),
                    kind: ScalarKind::Float,
                })
            }
        }
        deserializer.deserialize_newtype_struct(RAW_SCALAR, RawVisitor)
    }
}
