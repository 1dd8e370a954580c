//! Integration tests: the real `hydra` binary on ephemeral ports, spoken to over raw TCP.

#[macro_use]
mod harness;

mod api;
mod backup;
mod browser;
mod cli;
mod client_assertion;
mod clients;
mod concurrency;
mod config;
mod cookies;
mod cors;
mod crash;
mod deploy;
mod device;
mod engine;
mod faults;
mod flow;
mod hooks;
mod idp;
mod implicit;
mod introspect;
mod janitor;
mod jwt_access_token;
mod jwt_bearer;
mod keys;
mod logout;
mod metrics;
mod nodes;
mod pg_faults;
mod registration;
mod request_object;
mod restart;
mod revoke;
mod security;
mod tls;
mod token;
