//! Every integration suite, in one test binary so the build stays fast on 2 cores.

mod suite;
