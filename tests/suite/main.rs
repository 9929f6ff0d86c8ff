//! The integration tests, one binary with a module per area (one link, one shared Prometheus,
//! nginx and etcd for the whole suite). Every test runs the real `runbook` binary.

mod support;

mod analysis;
mod claims_config;
mod claims_output;
mod cli;
mod control;
mod docs;
mod exit_codes;
mod layers;
mod locks;
mod matrix;
mod modules;
mod recovery;
mod rehearsal;
mod repl;
mod runner;
mod scenarios;
mod teams;
