//! The committed stream, and the one way every stage after the commit follows it.
//!
//! Detection, the live stream and every later consumer read the same thing: the events
//! the store committed, in commit order, each with its sequence number. Three parts:
//!
//! - [`hub`]: what the commit stage says it committed, with the last commits' events
//!   held in memory and a watch channel that wakes followers;
//! - [`log`]: the [`CommittedLog`] trait, the store read by sequence number, which both
//!   stores implement;
//! - [`follower`]: a [`Follower`] that starts at a cursor, takes events from the hub
//!   while it keeps up and from the log when it lags, and hands out batches in order,
//!   never skipping one;
//! - [`filter`]: what a live-stream subscriber asks to see;
//! - [`live`]: the live stream's fan-out, one follower feeding a bounded ring that every
//!   subscriber reads at its own pace.

pub mod filter;
pub mod follower;
pub mod hub;
pub mod live;
pub mod log;

pub use filter::{Filter, FilterError};
pub use follower::Follower;
pub use hub::{Commits, CommittedEvent, Head, Lag};
pub use live::{FindingNote, Live, LiveEvent, LiveItem};
pub use log::{CommittedLog, LogError};
