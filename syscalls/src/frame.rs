//! The frame codec: a `u32` little-endian body length, then a postcard body.
//!
//! ```text
//! +----------------+------------------------------+
//! | len: u32 (LE)  | body: postcard, `len` bytes  |
//! +----------------+------------------------------+
//! ```
//!
//! The length is checked against the limit before a byte is allocated for the body, so a
//! hostile peer cannot make its reader reserve 4 GiB by sending four bytes.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The default limit on a frame body (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 << 20;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// A frame could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header announced a body over the limit.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge { len: u64, max: u32 },
    /// The body is not a valid postcard encoding of the expected type.
    #[error("frame body does not decode")]
    Decode(#[source] postcard::Error),
    /// The value could not be encoded.
    #[error("value does not encode")]
    Encode(#[source] postcard::Error),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({have} of {want} bytes)")]
    Truncated { have: usize, want: usize },
    /// The underlying reader or writer failed.
    #[error("frame i/o failed")]
    Io(#[source] io::Error),
}

/// Checks a header against `max` and returns the body length.
pub fn body_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len > max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// Appends one frame holding `msg` to `out`.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let mut body = postcard::to_extend(msg, std::mem::take(out)).map_err(FrameError::Encode)?;
    let len = body.len() - start - HEADER_LEN;
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge {
        len: len as u64,
        max: u32::MAX,
    })?;
    body[start..start + HEADER_LEN].copy_from_slice(&len32.to_le_bytes());
    *out = body;
    Ok(())
}

/// One frame holding `msg`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Decodes a frame body. Trailing bytes are an error: a body is exactly one value.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(postcard::Error::DeserializeBadEncoding));
    }
    Ok(value)
}

/// Reads one frame body from a blocking reader. `Ok(None)` on a clean end of stream
/// (no byte of a new frame read).
pub fn read_frame(r: &mut impl Read, max: u32) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut have = 0;
    while have < HEADER_LEN {
        match r.read(&mut header[have..]) {
            Ok(0) if have == 0 => return Ok(None),
            Ok(0) => {
                return Err(FrameError::Truncated {
                    have,
                    want: HEADER_LEN,
                })
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = body_len(header, max)?;
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match r.read(&mut body[got..]) {
            Ok(0) => {
                return Err(FrameError::Truncated {
                    have: got,
                    want: len,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(Some(body))
}

/// Writes one frame holding `msg` to a blocking writer.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes).map_err(FrameError::Io)
}

/// An incremental decoder for non-blocking readers: push bytes as they arrive, take whole
/// frame bodies out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: u32,
}

impl FrameDecoder {
    pub fn new(max: u32) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame body, if one has arrived. A header over the limit is an error as
    /// soon as its four bytes are in, before the body is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        let len = body_len(header, self.max)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(body))
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{AgentFrame, Hello};

    #[test]
    fn oversized_header_is_refused_before_allocation() {
        let mut bytes = (DEFAULT_MAX_FRAME + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"xx");
        let err = read_frame(&mut bytes.as_slice(), DEFAULT_MAX_FRAME).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u64::from(DEFAULT_MAX_FRAME) + 1 && max == DEFAULT_MAX_FRAME)
        );
        let mut dec = FrameDecoder::new(16);
        dec.push(&17u32.to_le_bytes());
        assert!(matches!(
            dec.next_frame(),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
    }

    #[test]
    fn truncated_and_clean_eof() {
        assert!(read_frame(&mut [].as_slice(), 64).unwrap().is_none());
        assert!(matches!(
            read_frame(&mut [5u8, 0].as_slice(), 64),
            Err(FrameError::Truncated { have: 2, want: 4 })
        ));
        assert!(matches!(
            read_frame(&mut [3u8, 0, 0, 0, 1].as_slice(), 64),
            Err(FrameError::Truncated { have: 1, want: 3 })
        ));
    }

    #[test]
    fn decoder_reassembles_split_frames() {
        let hello = AgentFrame::Hello(Hello {
            abi: 1,
            sdk: "t".into(),
        });
        let mut stream = encode(&hello).unwrap();
        encode_into(&hello, &mut stream).unwrap();
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut out = Vec::new();
        for b in &stream {
            dec.push(std::slice::from_ref(b));
            while let Some(body) = dec.next_frame().unwrap() {
                out.push(decode::<AgentFrame>(&body).unwrap());
            }
        }
        assert_eq!(out, vec![hello.clone(), hello]);
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn trailing_bytes_do_not_decode() {
        let mut body = postcard::to_stdvec(&AgentFrame::Hello(Hello {
            abi: 1,
            sdk: String::new(),
        }))
        .unwrap();
        body.push(0);
        assert!(matches!(
            decode::<AgentFrame>(&body),
            Err(FrameError::Decode(_))
        ));
    }
}
