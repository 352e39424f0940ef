//! User-data bytes -> load -> plan with fixed facts and the default system config. Every
//! typed config is planned (no panic even for invalid ones); every accepted one must pass
//! `cloudcfg::plan::invariants` (paths, argv, lines, modes, order, redaction, determinism).
#![no_main]

use cloudcfg::config::{self, system::SystemConfig};
use cloudcfg::decode::Limits;
use cloudcfg::plan::{self, Facts, invariants, render};
use libfuzzer_sys::fuzz_target;

fn facts() -> Facts {
    Facts {
        instance_id: Some("i-0fuzz".into()),
        hostname: Some("fuzz".into()),
        fqdn: Some("fuzz.example.org".into()),
        release: Some("bookworm".into()),
        arch: "amd64".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let loaded = config::load(data, &Limits::default());
    let Some(config) = &loaded.config else {
        return;
    };
    let system = SystemConfig::default();
    if !loaded.is_valid() {
        // The CLI refuses these; planning them must still not panic.
        let _ = plan::plan(config, &facts(), &system);
        return;
    }
    match invariants::plan_and_check(config, &facts(), &system) {
        Ok(plan) => {
            let _ = render::text(&plan, &loaded.warnings());
            let _ = render::json(&plan.redacted(), &loaded.warnings());
        }
        Err(v) => panic!("invariant violated: {v}"),
    }
});
