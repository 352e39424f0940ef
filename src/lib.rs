//! cloudcfg: a boot-time cloud-config processor for Debian and Ubuntu instances.
//!
//! The pipeline: datasource -> user data -> [`decode`] -> [`config::CloudConfig`] -> [`plan`]
//! -> [`action::Action`]s -> [`apply`] -> [`report`]. Everything up to the plan is pure; only
//! apply touches the system. Each file imports only from the floors below its own (the
//! README's Design section draws them; `tests/layers.rs` holds the code to that picture).

pub mod action;
pub mod apply;
pub mod autosign;
pub mod cli;
pub mod config;
pub mod datasource;
pub mod decode;
pub mod diag;
pub mod manpage;
pub mod module;
pub mod modules;
pub mod plan;
pub mod redact;
pub mod report;
pub mod schema;
pub mod system;
pub mod target;
pub mod values;
pub mod writer;
