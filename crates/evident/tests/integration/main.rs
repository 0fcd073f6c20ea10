//! evident's end-to-end tests: the real binary, a real HTTP server on 127.0.0.1, real SQLite
//! and a real PostgreSQL server.

mod agent;
mod auth;
mod bad_input;
mod cli;
mod common;
mod crash;
mod dashboard;
mod detection;
mod followers;
mod hardening;
mod integrity;
mod pipeline;
mod postgres;
mod postgres_integrity;
mod privacy;
mod query;
mod rules;
mod sdk;
mod shapes;
mod stream;
mod syslog;
