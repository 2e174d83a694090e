//! Integration tests of agentos-policy (one binary; suites under `tests/suite/`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
mod suite;
