//! Shared helpers for the integration tests. A test file uses them with `mod support;`.
//!
//! Each integration test file is its own crate and compiles this module again, and most files use
//! only some of the helpers, so dead-code warnings are silenced in each submodule
//! (`#![allow(dead_code)]` at its top) rather than in every test file.

pub mod deb;
pub mod http;
pub mod https;
pub mod moto;
pub mod net;
pub mod proxy;
pub mod puppet;
pub mod root;
pub mod ssh;
