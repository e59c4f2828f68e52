#![no_main]
//! Fuzz target: `targets::config` (see ../targets.rs).

#[allow(dead_code)] // each target uses one of the shared bodies
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::config(data));
