//! One module per resource; each handler checks the caller, calls one service, answers.

pub mod dead_letters;
pub mod events;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod stats;
