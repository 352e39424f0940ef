//! `apt_configure`: apt.conf snippets and proxy, signing keys, sources, debconf answers.
//!
//! Keys: the seed's `apt_sources` list and cloud-init's `apt:` mapping (v3), the legacy
//! `apt_*` keys cloud-init still maps, the seed's `apt_conf` list and `debconf_selections`.
//! Legacy and v3 keys given together are merged (cloud-init 22.4 drops the legacy sources).
//!
//! Every key goes into a keyring of its own under `/etc/apt/keyrings/`, named in its source's
//! line with `signed-by=`, never into a keyring apt trusts for every repository. Keys are all
//! fetched and verified before any source file is written, so a bad key never leaves apt with a
//! source it cannot verify (apply enforces this; the plan lists keys before sources).
//!
//! One file per concern: [`conf`] (apt.conf.d and the proxy), [`key`] (one entry's signing
//! key), [`mirrors`] (sources.list), [`sources`] (the `.list` files), [`debconf`].

mod conf;
pub mod deb822;
mod debconf;
mod key;
mod lines;
mod mirrors;
mod sources;
mod types;

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::module::{Checker, Module, Need, Planner};

pub use self::lines::{substitute, with_signed_by};
pub use self::mirrors::{Mirrors, mirrors};
pub use self::sources::{SourceEntry, source_entries};
pub use self::types::*;

impl Module for AptConfigure {
    const NAME: &'static str = "apt_configure";
    const STAGE: Stage = Stage::Config;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        sources::check(self, cx);
        check_legacy_with_v3(self, cx);
        conf::check(self, cx);
        mirrors::check(self, cx);
        debconf::check(self, cx);
    }

    fn needs(&self) -> Vec<Need> {
        if sources::adds_sources(self) {
            vec![Need::PackageLists("sources are added".into())]
        } else {
            Vec::new()
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let facts = planner.facts;
        conf::plan(self, planner);

        // Keys, all before any source.
        let entries = source_entries(self);
        let needs_release = entries.iter().any(|e| {
            e.ppa().is_some()
                || e.source
                    .source
                    .as_deref()
                    .is_some_and(|s| s.contains("$RELEASE") || s.contains("${RELEASE}"))
        }) || mirrors::writes_sources_list(self);
        let release = if needs_release {
            Some(facts.require(
                &facts.release,
                "--release",
                "the target's release is needed for $RELEASE, PPAs and sources.list",
            )?)
        } else {
            facts.release.as_deref()
        };
        let proxies = conf::key_fetch_proxies(self);
        for entry in &entries {
            let src = entry.source;
            let planned = key::plan_key(
                planner,
                &entry.path,
                entry.keyring(),
                key::KeyFields {
                    key: src.key.as_ref(),
                    keyid: src.keyid.as_ref(),
                    keyserver: src.keyserver.as_ref(),
                    key_url: src.key_url.as_ref(),
                },
                &proxies,
            )?;
            if !planned && let Some(ppa) = entry.ppa() {
                planner.push(ActionKind::FetchKey {
                    keyid: None,
                    keyserver: None,
                    ppa: Some(format!("{}/{}", ppa.owner, ppa.name)),
                    url: None,
                    http_proxy: proxies.0.clone(),
                    https_proxy: proxies.1.clone(),
                    dest: entry.keyring(),
                });
            }
        }
        if mirrors::writes_sources_list(self) {
            for (name, mirror) in mirrors::selected_mirrors(self, facts) {
                key::plan_key(
                    planner,
                    &format!("apt.{name}"),
                    mirrors::mirror_keyring(name),
                    key::KeyFields {
                        key: mirror.key.as_ref(),
                        keyid: mirror.keyid.as_ref(),
                        keyserver: mirror.keyserver.as_ref(),
                        key_url: None,
                    },
                    &proxies,
                )?;
            }
        }

        // Sources: sources.list when asked for, then one file per name.
        mirrors::plan(self, planner, release.unwrap_or_default())?;
        sources::plan(self, planner, release)?;
        debconf::plan(self, planner);
        Ok(())
    }
}

/// Legacy keys beside `apt:` are merged, where cloud-init 22.4 drops them: say so.
fn check_legacy_with_v3(config: &AptConfigure, cx: &mut Checker<'_>) {
    let legacy: Vec<&str> = [
        ("apt_sources", config.apt_sources.is_some()),
        ("apt_proxy", config.apt_proxy.is_some()),
        ("apt_http_proxy", config.apt_http_proxy.is_some()),
        ("apt_ftp_proxy", config.apt_ftp_proxy.is_some()),
        ("apt_https_proxy", config.apt_https_proxy.is_some()),
        (
            "apt_preserve_sources_list",
            config.apt_preserve_sources_list.is_some(),
        ),
        ("apt_mirror", config.apt_mirror.is_some()),
        ("apt_mirror_search", config.apt_mirror_search.is_some()),
        (
            "apt_mirror_search_dns",
            config.apt_mirror_search_dns.is_some(),
        ),
        (
            "apt_custom_sources_list",
            config.apt_custom_sources_list.is_some(),
        ),
        ("add_apt_repo_match", config.add_apt_repo_match.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    if let (Some(_), Some(first)) = (&config.apt, legacy.first()) {
        cx.warning(
            first,
            format!(
                "legacy keys ({}) and `apt:` are both given: cloudcfg merges them (cloud-init 22.4 \
                 ignores the legacy ones); where both set the same thing, `apt:` wins",
                legacy.join(", ")
            ),
        );
    }
}
