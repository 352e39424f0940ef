//! cloudcfg: a boot-time cloud-config processor for Debian and Ubuntu instances.
//!
//! The pipeline, one folder per stage:
//! datasource -> user data -> [`decode`] -> [`config::CloudConfig`] -> [`plan`] -> apply -> report.
//! Everything up to the plan is pure; only apply touches the system.

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
