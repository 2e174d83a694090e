//! What a person reads is safe to read (DESIGN §1 invariant 8).
//!
//! Agents control many strings agentctl prints: paths and resources of parked calls, record
//! fields, exit reasons, their own output. A raw control character in one of them can rewrite
//! the operator's screen (`\x1b[2K\r` erases a line and prints another in its place; a bidi
//! override such as U+202E reorders what follows). So every character that is not plain text
//! is shown as a visible escape before it reaches a terminal:
//!
//! - C0 controls, DEL and C1 controls as `\xNN` (`\n`, `\r`, `\t` as themselves, escaped);
//! - Unicode format and bidi controls (U+061C, U+200B–U+200F, U+2028–U+202E, U+2060–U+206F,
//!   U+FEFF, U+FFF9–U+FFFB, U+00AD, U+180E, the tag block U+E0000–U+E007F) as `\u{202e}`.
//!
//! A backslash is left as it is, so escaping is idempotent (text escaped twice reads the
//! same); an agent can print the four characters `\x1b`, but never the byte.
//!
//! How it is applied, so that no view can forget it:
//! - every human line goes through `say!` / `say_err!`, which
//!   escape everything but the line breaks of agentctl's own format string; `clippy.toml` of
//!   this crate forbids `println!`/`eprintln!`/`print!`/`eprint!`;
//! - agent strings inside a line or a table cell are wrapped in [`Safe`], which escapes line
//!   breaks and tabs too (an agent cannot start a fake row);
//! - JSON (`--json`, `recorder export`) is written by [`json_pretty`]/[`json_line`]: serde
//!   escapes C0 controls, and these escape DEL, C1 and format/bidi controls as `\uXXXX` too,
//!   so the JSON is the same value and still safe on a terminal;
//! - an agent's own output (`logs`, `run`) goes through [`Escaping`] on a terminal, keeping
//!   `\n` and `\t`; it is passed through raw when stdout is not a terminal or with `--raw`.

use std::fmt::{self, Write as _};
use std::io;

/// Whether `c` must not reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Which harmless layout characters pass through unescaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub newline: bool,
    pub tab: bool,
}

impl Keep {
    /// A table cell or a field inside a line: nothing kept.
    pub const NOTHING: Keep = Keep {
        newline: false,
        tab: false,
    };
    /// agentctl's own lines: their line breaks are kept.
    pub const LINES: Keep = Keep {
        newline: true,
        tab: false,
    };
    /// An agent's output on a terminal: line breaks and tabs are kept.
    pub const OUTPUT: Keep = Keep {
        newline: true,
        tab: true,
    };

    fn keeps(self, c: char) -> bool {
        (c == '\n' && self.newline) || (c == '\t' && self.tab)
    }
}

fn escape_char(c: char, out: &mut impl fmt::Write) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

fn escape_into(s: &str, keep: Keep, out: &mut impl fmt::Write) -> fmt::Result {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if is_unsafe(c) && !keep.keeps(c) {
            out.write_str(&s[start..i])?;
            escape_char(c, out)?;
            start = i + c.len_utf8();
        }
    }
    out.write_str(&s[start..])
}

/// Bytes an agent sent, as one safe line: text with every unsafe character escaped (as
/// [`escape`]), and each byte that is not UTF-8 as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        let _ = escape_into(chunk.valid(), Keep::NOTHING, &mut out);
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// `s` with every unsafe character escaped, line breaks and tabs included.
pub fn escape(s: &str) -> String {
    escape_with(s, Keep::NOTHING)
}

/// `s` with every unsafe character escaped except those `keep` names.
pub fn escape_with(s: &str, keep: Keep) -> String {
    let mut out = String::with_capacity(s.len());
    let _ = escape_into(s, keep, &mut out);
    out
}

/// An agent-controlled string, displayed escaped (line breaks and tabs too).
#[derive(Debug, Clone, Copy)]
pub struct Safe<'a>(pub &'a str);

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_none() && f.precision().is_none() {
            return escape_into(self.0, Keep::NOTHING, f);
        }
        f.pad(&escape(self.0))
    }
}

/// Writes one line for a person (use `say!` / `say_err!`):
/// everything unsafe is escaped except line breaks. A closed stdout ends agentctl quietly
/// ([`crate::stdout`]).
pub fn line(args: fmt::Arguments<'_>, to_stderr: bool) {
    let text = match args.as_str() {
        Some(s) => escape_with(s, Keep::LINES),
        None => escape_with(&args.to_string(), Keep::LINES),
    };
    let _ = if to_stderr {
        io::Write::write_all(&mut io::stderr().lock(), format!("{text}\n").as_bytes())
    } else {
        crate::stdout::write_all(format!("{text}\n").as_bytes())
    };
}

/// `println!` for a person: control characters escaped (see [`crate::safe`]).
macro_rules! say {
    ($($arg:tt)*) => { $crate::safe::line(format_args!($($arg)*), false) };
}

/// `eprintln!` for a person: control characters escaped (see [`crate::safe`]).
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::safe::line(format_args!($($arg)*), true) };
}

/// A writer that escapes what passes through it, for byte streams that may be any text
/// (an agent's output): valid UTF-8 is escaped as [`escape_with`] does; bytes that are not
/// UTF-8 are shown as `\xNN`. A character split across two writes is held until it is whole.
#[derive(Debug)]
pub struct Escaping<W: io::Write> {
    inner: W,
    keep: Keep,
    /// The first bytes of a character cut by the end of the last write (at most 3).
    pending: Vec<u8>,
}

impl<W: io::Write> Escaping<W> {
    pub fn new(inner: W, keep: Keep) -> Self {
        Self {
            inner,
            keep,
            pending: Vec::new(),
        }
    }

    /// Escapes `bytes` (after any held bytes) into a string; holds an incomplete tail.
    fn convert(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(bytes);
        let mut out = String::with_capacity(buf.len());
        let mut rest: &[u8] = &buf;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    let _ = escape_into(s, self.keep, &mut out);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    if let Ok(s) = std::str::from_utf8(good) {
                        let _ = escape_into(s, self.keep, &mut out);
                    }
                    match e.error_len() {
                        Some(n) => {
                            for b in &bad[..n] {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                            rest = &bad[n..];
                        }
                        None => {
                            self.pending = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Writes out any held bytes (as `\xNN`: the character never completed) and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        let held = std::mem::take(&mut self.pending);
        let mut out = String::new();
        for b in held {
            let _ = write!(out, "\\x{b:02x}");
        }
        self.inner.write_all(out.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: io::Write> io::Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = self.convert(buf);
        self.inner.write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where an agent's own output (`agentctl logs`, `agentctl run`) goes: raw bytes when stdout
/// is not a terminal (or `--raw`), escaped (keeping `\n` and `\t`) on a terminal.
pub enum OutputSink<W: io::Write> {
    Raw(W),
    Escaped(Escaping<W>),
}

impl<W: io::Write> OutputSink<W> {
    /// `raw`: the operator asked for raw bytes; `terminal`: the writer is a terminal.
    pub fn new(inner: W, raw: bool, terminal: bool) -> Self {
        if raw || !terminal {
            OutputSink::Raw(inner)
        } else {
            OutputSink::Escaped(Escaping::new(inner, Keep::OUTPUT))
        }
    }

    /// Writes one chunk and flushes it.
    pub fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            OutputSink::Raw(w) => w.write_all(bytes).and_then(|()| w.flush()),
            OutputSink::Escaped(w) => {
                io::Write::write_all(w, bytes).and_then(|()| io::Write::flush(w))
            }
        }
    }

    /// Ends the stream (a character cut at the very end is shown as `\xNN`).
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            OutputSink::Raw(w) => w.flush(),
            OutputSink::Escaped(w) => w.finish(),
        }
    }
}

/// The stdout sink for an agent's output (a closed stdout: [`crate::stdout`]).
pub fn stdout_sink(raw: bool) -> OutputSink<crate::stdout::Stdout> {
    use std::io::IsTerminal;
    let terminal = io::stdout().is_terminal();
    OutputSink::new(crate::stdout::Stdout, raw, terminal)
}

/// A JSON formatter that escapes, beyond what serde_json escapes (C0, `"`, `\`), every other
/// unsafe character (DEL, C1, format and bidi controls) as `\uXXXX`: the same JSON value,
/// safe to show on a terminal.
struct SafeJson<F>(F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for SafeJson<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn json_with<F: serde_json::ser::Formatter>(v: &impl serde::Serialize, f: F) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, SafeJson(f));
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Pretty JSON, safe on a terminal (see [`SafeJson`]).
pub fn json_pretty(v: &impl serde::Serialize) -> String {
    json_with(v, serde_json::ser::PrettyFormatter::new())
}

/// One-line JSON, safe on a terminal (see [`SafeJson`]).
pub fn json_line(v: &impl serde::Serialize) -> String {
    json_with(v, serde_json::ser::CompactFormatter)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    const HOSTILE: &str = "/workspace/a\x1b[2K\rapproved\u{202e}txt.exe\u{2066}\u{2069}\u{200b}\u{7f}\u{85}\u{9b}31m\nID 9";

    fn clean(s: &str, keep: Keep) -> bool {
        s.chars().all(|c| !is_unsafe(c) || keep.keeps(c))
    }

    #[test]
    fn bytes_are_escaped_text_and_bytes_that_are_not_utf8_read_as_hex() {
        assert_eq!(
            escape_bytes(b"hello\x1b[31mred\n\x00\xff\xe2\x80"),
            "hello\\x1b[31mred\\n\\x00\\xff\\xe2\\x80"
        );
        assert_eq!(
            escape_bytes("caf\u{e9} \u{202e}".as_bytes()),
            "caf\u{e9} \\u{202e}"
        );
        assert!(clean(&escape_bytes(HOSTILE.as_bytes()), Keep::NOTHING));
    }

    #[test]
    fn every_control_and_bidi_character_is_escaped() {
        let e = escape(HOSTILE);
        assert_eq!(
            e,
            "/workspace/a\\x1b[2K\\rapproved\\u{202e}txt.exe\\u{2066}\\u{2069}\\u{200b}\\x7f\\x85\\x9b31m\\nID 9"
        );
        assert!(clean(&e, Keep::NOTHING));
        // Idempotent: escaped text has nothing left to escape.
        assert_eq!(escape(&e), e);
        // Plain text, including non-ASCII letters and our own symbols, is untouched.
        for s in ["naïve/日本語/файл", "a → b · c … ≠ ─"] {
            assert_eq!(escape(s), s);
        }
    }

    #[test]
    fn each_class_is_covered() {
        for c in ('\0'..='\u{1f}')
            .chain(['\u{7f}'])
            .chain('\u{80}'..='\u{9f}')
        {
            assert!(is_unsafe(c), "{:x}", c as u32);
            assert!(escape(&c.to_string()).starts_with("\\"));
        }
        for c in [
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{2028}',
            '\u{2029}',
            '\u{feff}',
            '\u{061c}',
            '\u{00ad}',
            '\u{2060}',
            '\u{e0041}',
        ] {
            assert!(is_unsafe(c), "{:x}", c as u32);
            let want = if (c as u32) < 0x100 {
                format!("\\x{:02x}", c as u32)
            } else {
                format!("\\u{{{:x}}}", c as u32)
            };
            assert_eq!(escape(&c.to_string()), want);
        }
        for c in ['a', ' ', 'é', '…', '→', '日', '\u{a0}'] {
            assert!(!is_unsafe(c));
        }
    }

    #[test]
    fn lines_keep_line_breaks_only_and_safe_keeps_nothing() {
        assert_eq!(escape_with("a\nb\tc\r", Keep::LINES), "a\nb\\tc\\r");
        assert_eq!(escape_with("a\nb\tc\r", Keep::OUTPUT), "a\nb\tc\\r");
        assert_eq!(format!("[{}]", Safe("x\ny")), "[x\\ny]");
        assert_eq!(format!("[{:<6}]", Safe("\x1b")), "[\\x1b  ]");
    }

    #[test]
    fn the_stream_escaper_holds_split_characters_and_shows_bad_bytes() {
        let mut out = Vec::new();
        {
            let mut w = Escaping::new(&mut out, Keep::OUTPUT);
            let bytes = "é\u{202e}\x1b[31m\n".as_bytes();
            // Every split point, including inside the two- and three-byte characters.
            for b in bytes {
                w.write_all(&[*b]).unwrap();
            }
            w.write_all(&[0xff, b'x', 0xe2, 0x80]).unwrap();
            w.finish().unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "é\\u{202e}\\x1b[31m\n\\xffx\\xe2\\x80"
        );
    }

    #[test]
    fn output_sink_is_raw_off_a_terminal_or_when_asked() {
        let mut raw = Vec::new();
        OutputSink::new(&mut raw, false, false)
            .chunk(b"\x1b[2K")
            .unwrap();
        assert_eq!(raw, b"\x1b[2K");
        let mut asked = Vec::new();
        OutputSink::new(&mut asked, true, true)
            .chunk(b"\x1b[2K")
            .unwrap();
        assert_eq!(asked, b"\x1b[2K");
        let mut tty = Vec::new();
        OutputSink::new(&mut tty, false, true)
            .chunk(b"\x1b[2K\tok\n")
            .unwrap();
        assert_eq!(tty, b"\\x1b[2K\tok\n");
    }

    #[test]
    fn json_stays_the_same_value_and_is_safe_on_a_terminal() {
        let v = serde_json::json!({"resource": HOSTILE, "emoji": "😀"});
        for text in [json_pretty(&v), json_line(&v)] {
            assert!(clean(&text, Keep::LINES), "{text}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, v);
        }
        assert!(json_line(&v).contains("\\u202e"));
        assert!(json_line(&v).contains("😀"));
    }
}
