//! JSON Schemas generated from the types: the cloud-config (`schema/cloud-config.schema.json`)
//! and the system config (`schema/system-config.schema.json`).

use crate::config::CloudConfig;
use crate::system::SystemConfig;

pub fn cloud_config() -> String {
    pretty(&schemars::schema_for!(CloudConfig))
}

pub fn system_config() -> String {
    pretty(&schemars::schema_for!(SystemConfig))
}

fn pretty(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
