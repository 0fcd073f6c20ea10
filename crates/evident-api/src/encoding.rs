//! `Content-Encoding` of request bodies: identity, or gzip decoded within the body limit.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use std::io::Read;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// As sent (no header, or `identity`).
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
}

impl ContentEncoding {
    /// The encoding `headers` declare; 415 naming an encoding evident does not read.
    pub fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(Self::Identity);
        };
        let text = value.to_str().unwrap_or("(not text)").trim();
        match text.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            _ => Err(ApiError::UnsupportedMediaType(format!(
                "Content-Encoding `{text}` is not supported; send the body as is or gzip-compressed"
            ))),
        }
    }

    /// The body decoded: 413 when it would exceed `limit` bytes once decoded (reading
    /// stops there, so a small bomb costs no more than the limit), 400 when it is not
    /// valid in its encoding.
    pub fn decode(self, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
        match self {
            Self::Identity => Ok(body),
            Self::Gzip => {
                let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
                let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
                flate2::read::MultiGzDecoder::new(&body[..])
                    .take(cap)
                    .read_to_end(&mut decoded)
                    .map_err(|e| {
                        ApiError::InvalidBody(format!("the body is not valid gzip: {e}"))
                    })?;
                if decoded.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                Ok(Bytes::from(decoded))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn headers(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        headers
    }

    #[test]
    fn gzip_is_decoded_within_the_limit() {
        let encoding = ContentEncoding::of(&headers("GZIP")).unwrap();
        let body = encoding.decode(gzip(b"{\"type\":\"a.b\"}"), 100).unwrap();
        assert_eq!(&body[..], b"{\"type\":\"a.b\"}");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b' '; 50_000_000]);
        assert!(bomb.len() < 500_000);
        let err = ContentEncoding::Gzip.decode(bomb, 1_000_000).unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge(1_000_000)), "{err}");
    }

    #[test]
    fn unknown_encodings_and_corrupt_gzip_are_named() {
        let err = ContentEncoding::of(&headers("br")).unwrap_err();
        assert!(err.to_string().contains("`br`"), "{err}");
        let err = ContentEncoding::Gzip
            .decode(Bytes::from_static(b"{}"), 100)
            .unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }
}
