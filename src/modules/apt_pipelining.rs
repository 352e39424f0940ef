//! `apt_pipelining`: apt's `Acquire::http::Pipeline-Depth`, for mirrors and proxies that break
//! HTTP pipelining (S3 once did, LP: #948461).
//!
//! `false` writes depth 0; a number from 0 to 5 writes that depth; `true`, `os`, `none` and
//! `unchanged` keep the distribution's default and write nothing, as does leaving the key out.
//! The file and its text are cloud-init's, byte for byte, so an image that moves from
//! cloud-init keeps the same file. cloud-init logs a warning and writes nothing for any other
//! value (`true` among them, though its schema accepts it); cloudcfg reads `true` as the
//! default it asks for, and refuses the rest at validation, with the value's position.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::action::{Frequency, PlanError, Stage, Text};
use crate::module::{Module, Planner};

pub const PIPELINING_FILE: &str = "/etc/apt/apt.conf.d/90cloud-init-pipelining";
/// apt's pipeline depths that cloud-init writes.
const MAX_DEPTH: u8 = 5;

/// The top-level key `apt_pipelining` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct AptPipelining {
    /// apt's HTTP pipeline depth: `false` (depth 0, pipelining off), a depth from 0 to 5, or
    /// `os`/`none`/`unchanged`/`true` for the distribution's default (nothing written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_pipelining: Option<Pipelining>,
}

/// One value of `apt_pipelining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipelining {
    /// The distribution's default: nothing is written.
    OsDefault,
    Depth(u8),
}

/// The three words cloud-init reads as "the distribution's default".
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum DefaultWord {
    None,
    Unchanged,
    Os,
}

/// What the schema says of a value, as `Deserialize` reads it.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
enum PipeliningSchema {
    Switch(bool),
    Depth(#[schemars(range(min = 0, max = 5))] u8),
    Default(DefaultWord),
}

impl JsonSchema for Pipelining {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Pipelining".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        PipeliningSchema::json_schema(generator)
    }
}

impl Serialize for Pipelining {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Pipelining::OsDefault => serializer.serialize_str("os"),
            Pipelining::Depth(depth) => serializer.serialize_u8(*depth),
        }
    }
}

impl<'de> Deserialize<'de> for Pipelining {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PipeliningVisitor;
        impl Visitor<'_> for PipeliningVisitor {
            type Value = Pipelining;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("false, a pipeline depth from 0 to 5, or os/none/unchanged")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v {
                    Pipelining::OsDefault
                } else {
                    Pipelining::Depth(0)
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u8::try_from(v) {
                    Ok(depth) if depth <= MAX_DEPTH => Ok(Pipelining::Depth(depth)),
                    _ => Err(E::custom(format_args!(
                        "pipeline depth {v} is out of range: apt_pipelining takes 0 to \
                         {MAX_DEPTH} (cloud-init ignores other numbers)"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "os" | "none" | "unchanged" => Ok(Pipelining::OsDefault),
                    _ => Err(E::custom(format_args!(
                        "unknown value {v:?}: apt_pipelining takes false, a pipeline depth from 0 \
                         to {MAX_DEPTH}, or os, none or unchanged"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(PipeliningVisitor)
    }
}

impl Module for AptPipelining {
    const NAME: &'static str = "apt_pipelining";
    const STAGE: Stage = Stage::Config;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        if let Some(Pipelining::Depth(depth)) = self.apt_pipelining {
            planner.write_file(
                PIPELINING_FILE,
                0o644,
                Text::plain(format!(
                    "//Written by cloud-init per 'apt_pipelining'\n\
                     Acquire::http::Pipeline-Depth \"{depth}\";\n"
                )),
            );
        }
        Ok(())
    }
}
