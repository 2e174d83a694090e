//! Decode-time bounds on the agent-sent sequences whose elements cost far more in memory than
//! on the wire (an empty `String` is one byte of postcard and 24 bytes of heap-owning struct):
//! `Exec`'s `argv` and a `JailReport`'s `layers`.
//!
//! Postcard announces a sequence's length before its elements, so the decoder allocates room
//! for at most `max + 1` elements, keeps the first `max + 1` and skips the rest without
//! allocating them. The kernel's validation then refuses the call (more than `max`) like any
//! other call over a limit; the wire format is unchanged (the goldens pin it).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::abi::Layer;
use crate::limits::{ARGV_MAX_COUNT, JAIL_LAYERS_MAX};

/// `Exec`'s `argv`: at most [`ARGV_MAX_COUNT`] + 1 arguments are kept.
pub(crate) fn argv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_seq(Capped::<String, SkipStr>::new(
        ARGV_MAX_COUNT + 1,
        "an argv",
    ))
}

/// A `JailReport`'s `layers`: at most [`JAIL_LAYERS_MAX`] + 1 layers are kept.
pub(crate) fn layers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Layer>, D::Error> {
    d.deserialize_seq(Capped::<Layer, Layer>::new(
        JAIL_LAYERS_MAX + 1,
        "jail layers",
    ))
}

/// Keeps the first `keep` elements of type `T`, then decodes (and drops) the rest as `S`,
/// a type that owns nothing on the heap (or, for layers, as `T` itself, one at a time).
struct Capped<T, S> {
    keep: usize,
    what: &'static str,
    _t: PhantomData<(T, S)>,
}

impl<T, S> Capped<T, S> {
    fn new(keep: usize, what: &'static str) -> Self {
        Capped {
            keep,
            what,
            _t: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>, S: Deserialize<'de>> Visitor<'de> for Capped<T, S> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let announced = seq.size_hint().unwrap_or(0);
        let mut out = Vec::with_capacity(announced.min(self.keep));
        while out.len() < self.keep {
            match seq.next_element::<T>()? {
                Some(x) => out.push(x),
                None => return Ok(out),
            }
        }
        while seq.next_element::<S>()?.is_some() {}
        Ok(out)
    }
}

/// A string decoded and dropped without being copied into a `String` where the decoder can
/// lend it (postcard from a slice can).
struct SkipStr;

impl<'de> Deserialize<'de> for SkipStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SkipStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SkipStr, E> {
                Ok(SkipStr)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use crate::abi::{AgentFrame, JailReport, LayerStatus, Request, Syscall};
    use crate::limits::{ARGV_MAX_COUNT, JAIL_LAYERS_MAX};

    fn exec(n: usize) -> AgentFrame {
        AgentFrame::Request(Request {
            id: 1,
            call: Syscall::Exec {
                argv: vec![String::new(); n],
                stdin: Vec::new(),
                cwd: None,
                timeout_ms: None,
            },
        })
    }

    #[test]
    fn argv_within_the_limit_round_trips() {
        for n in [0, 1, ARGV_MAX_COUNT, ARGV_MAX_COUNT + 1] {
            let bytes = postcard::to_stdvec(&exec(n)).unwrap();
            assert_eq!(crate::frame::decode::<AgentFrame>(&bytes).unwrap(), exec(n));
        }
    }

    #[test]
    fn a_million_arguments_decode_as_the_limit_plus_one() {
        let mut bytes = postcard::to_stdvec(&exec(1_000_000)).unwrap();
        let back = crate::frame::decode::<AgentFrame>(&bytes).unwrap();
        assert_eq!(back, exec(ARGV_MAX_COUNT + 1));
        // Trailing bytes after the skipped arguments are still an error.
        bytes.push(0);
        assert!(crate::frame::decode::<AgentFrame>(&bytes).is_err());
        // A truncated sequence is still an error.
        bytes.truncate(bytes.len() - 100);
        assert!(crate::frame::decode::<AgentFrame>(&bytes).is_err());
    }

    #[test]
    fn skipped_arguments_must_still_be_strings() {
        let mut bytes = postcard::to_stdvec(&exec(ARGV_MAX_COUNT + 2)).unwrap();
        // The last argument's length byte (0) becomes a length of 5 with no bytes after it.
        let at = bytes.len() - 4; // stdin len, cwd None, timeout None follow the last argv len
        assert_eq!(bytes[at], 0);
        bytes[at] = 5;
        assert!(crate::frame::decode::<AgentFrame>(&bytes).is_err());
    }

    #[test]
    fn jail_layers_are_capped() {
        let report = |n: usize| {
            AgentFrame::JailReport(JailReport {
                layers: vec![
                    crate::abi::Layer {
                        name: String::new(),
                        status: LayerStatus::Active {
                            detail: String::new()
                        },
                    };
                    n
                ],
            })
        };
        let bytes = postcard::to_stdvec(&report(100_000)).unwrap();
        assert_eq!(
            crate::frame::decode::<AgentFrame>(&bytes).unwrap(),
            report(JAIL_LAYERS_MAX + 1)
        );
        let bytes = postcard::to_stdvec(&report(3)).unwrap();
        assert_eq!(
            crate::frame::decode::<AgentFrame>(&bytes).unwrap(),
            report(3)
        );
    }
}
