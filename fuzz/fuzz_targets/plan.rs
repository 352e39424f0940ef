//! User-data bytes -> load -> `invariants::check_loaded` (the report; fixed facts and the default
//! system config for planning), then both renderings of an accepted plan. Every
//! typed config is planned (no panic even for invalid ones); every accepted one must pass
//! `cloudcfg::plan::invariants` (paths, argv, lines, modes, order, redaction, determinism).
#![no_main]

use cloudcfg::config;
use cloudcfg::decode::Limits;
use cloudcfg::plan::{invariants, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = config::load(data, &Limits::default());
    match invariants::check_loaded(&loaded) {
        Ok(Some(plan)) => {
            let _ = render::text(&plan, &loaded.warnings());
            let _ = render::json(&plan.redacted(), &loaded.warnings());
        }
        Ok(None) => {}
        Err(v) => panic!("invariant violated: {v}"),
    }
});
