//! What a source hands the ingestor: raw input it read, not yet decoded.

use evident_ingest::decode::RawItem;
use evident_ingest::{DecodeError, Limits};

/// Raw input one source read (a request body, a batch of syslog messages, an agent's
/// lines), decoded by the ingestor, on a blocking thread when it is large.
pub trait RawInput: Send + 'static {
    /// Roughly what decoding costs, in bytes of input; inputs over 64 KiB are decoded
    /// off the async workers. Compressed input should weigh what it may decode to.
    fn weight(&self) -> usize;

    /// Splits the input into raw events (one JSON object each, in any shape evident
    /// accepts), each with the input line it came from where lines mean something.
    /// A problem with the input as a whole is a [`DecodeError`]; a bad item refuses
    /// only that event.
    fn decode(self, limits: &Limits) -> Result<Vec<(Option<usize>, RawItem)>, DecodeError>;
}
