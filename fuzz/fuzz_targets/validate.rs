//! User-data bytes -> `config::load` (decode, types, checks) -> diagnostics as validate prints
//! them. Checked: the report's invariants (one line each, positions, no control characters)
//! and that validity agrees with the errors.
#![no_main]

use cloudcfg::config;
use cloudcfg::decode::Limits;
use cloudcfg::plan::invariants;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = config::load(data, &Limits::default());
    if let Err(v) = invariants::check_report(&loaded.report) {
        panic!("invariant violated: {v}");
    }
    assert_eq!(
        loaded.is_valid(),
        loaded.config.is_some() && loaded.report.errors() == 0
    );
    let json = loaded.report.to_json("user-data");
    assert_eq!(json["valid"], !loaded.report.has_errors());
    let _ = loaded.warnings();
});
