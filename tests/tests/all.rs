//! Every integration suite but the DoS suite (`dos.rs`, alone so that its latency
//! measurements are its own), in one test binary so the build stays fast on 2 cores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a failed test

mod suite;
