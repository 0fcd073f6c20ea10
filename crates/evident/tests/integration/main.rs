//! evident's end-to-end tests: the real binary, a real HTTP server on 127.0.0.1, real SQLite.

mod auth;
mod bad_input;
mod cli;
mod common;
mod crash;
mod pipeline;
mod query;
mod shapes;
