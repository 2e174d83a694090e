//! Finding the YAML inside a Markdown policy file, and mapping YAML positions back to it.
//!
//! Where the YAML is, first match wins:
//! 1. **front matter**: the file's first line is `---`; the YAML runs to the next `---` or `...`;
//! 2. **fenced blocks**: every ```` ```yaml ````/```` ```yml ```` (or `~~~yaml`) block, in file
//!    order, concatenated into one document;
//! 3. otherwise **the whole file** is YAML.
//!
//! Every YAML line remembers its Markdown line and how many columns of fence indentation were
//! stripped, so errors point into the `.md` file.

/// The YAML text of a policy file and the way back to the file's own lines.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The YAML document.
    pub yaml: String,
    /// For YAML line `i` (0-based): its 1-based line in the Markdown file and the number of
    /// columns stripped from its start.
    map: Vec<(u32, u32)>,
    /// Where the YAML came from, for messages.
    pub origin: Origin,
}

/// Which of the three layouts a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The whole file is YAML.
    WholeFile,
    /// `---` front matter at the top of the file.
    FrontMatter,
    /// One or more ```` ```yaml ```` blocks.
    FencedBlocks,
}

/// A problem found before YAML parsing: (line, column, message).
pub(crate) type SourceError = (u32, u32, String);

/// Splits `text` into lines without their `\n` / `\r\n` terminators.
pub(crate) fn lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

fn line_no(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

impl Source {
    /// No YAML at all (used to report errors found before any YAML exists).
    pub(crate) fn empty() -> Source {
        Source {
            yaml: String::new(),
            map: Vec::new(),
            origin: Origin::WholeFile,
        }
    }

    /// Extracts the YAML from a policy file.
    pub(crate) fn extract(text: &str) -> Result<Source, SourceError> {
        let all = lines(text);
        if let Some(first) = all.first() {
            if first.trim_end() == "---" {
                return front_matter(&all);
            }
        }
        if let Some(src) = fenced(&all) {
            return Ok(src);
        }
        Ok(Source {
            yaml: all.join("\n"),
            map: (0..all.len()).map(|i| (line_no(i), 0)).collect(),
            origin: Origin::WholeFile,
        })
    }

    /// Maps a 1-based YAML (line, column) to the Markdown file's (line, column).
    pub(crate) fn to_file(&self, line: u32, col: u32) -> (u32, u32) {
        let idx = line.saturating_sub(1) as usize;
        match self.map.get(idx) {
            Some(&(l, off)) => (l, col.max(1).saturating_add(off)),
            // Past the end (an error at EOF): the line after the last YAML line.
            None => match self.map.last() {
                Some(&(l, off)) => (l.saturating_add(1), col.max(1).saturating_add(off)),
                None => (1, col.max(1)),
            },
        }
    }
}

fn front_matter(all: &[&str]) -> Result<Source, SourceError> {
    let close = all.iter().enumerate().skip(1).find(|(_, l)| {
        let t = l.trim_end();
        t == "---" || t == "..."
    });
    let Some((end, _)) = close else {
        return Err((
            1,
            1,
            "front matter opened here is never closed with `---`".to_string(),
        ));
    };
    let body = &all[1..end];
    Ok(Source {
        yaml: body.join("\n"),
        map: (1..end).map(|i| (line_no(i), 0)).collect(),
        origin: Origin::FrontMatter,
    })
}

/// An opening or closing code fence: (indent, fence char, run length, info string).
fn fence(line: &str) -> Option<(usize, char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let run = rest.len() - rest.trim_start_matches(ch).len();
    if run < 3 {
        return None;
    }
    Some((indent, ch, run, rest[run..].trim()))
}

fn fenced(all: &[&str]) -> Option<Source> {
    let mut yaml: Vec<&str> = Vec::new();
    let mut map = Vec::new();
    let mut found = false;
    let mut i = 0;
    while i < all.len() {
        let Some((indent, ch, run, info)) = fence(all[i]) else {
            i += 1;
            continue;
        };
        let lang = info
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_yaml = lang == "yaml" || lang == "yml";
        found |= is_yaml;
        i += 1;
        while i < all.len() {
            let line = all[i];
            if let Some((_, c, r, rest)) = fence(line) {
                if c == ch && r >= run && rest.is_empty() {
                    break;
                }
            }
            if is_yaml {
                let strip = (line.len() - line.trim_start_matches(' ').len()).min(indent);
                yaml.push(&line[strip..]);
                map.push((line_no(i), u32::try_from(strip).unwrap_or(0)));
            }
            i += 1;
        }
        i += 1; // the closing fence (or EOF)
    }
    found.then(|| Source {
        yaml: yaml.join("\n"),
        map,
        origin: Origin::FencedBlocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_file() {
        let s = Source::extract("a: 1\nb: 2\n").unwrap();
        assert_eq!(s.origin, Origin::WholeFile);
        assert_eq!(s.yaml, "a: 1\nb: 2\n");
        assert_eq!(s.to_file(2, 3), (2, 3));
    }

    #[test]
    fn front_matter_maps_lines() {
        let s = Source::extract("---\na: 1\nb: 2\n---\n# Title\n```yaml\nc: 3\n```\n").unwrap();
        assert_eq!(s.origin, Origin::FrontMatter);
        assert_eq!(s.yaml, "a: 1\nb: 2");
        assert_eq!(s.to_file(2, 1), (3, 1));
        assert!(Source::extract("---\na: 1\n").is_err());
    }

    #[test]
    fn fenced_blocks_concatenate_and_map() {
        let text = "# Policy\n\nprose\n\n```yaml\na: 1\n```\n\n```rust\nfn x() {}\n```\n\n  ~~~yml\n  b: 2\n  ~~~\n";
        let s = Source::extract(text).unwrap();
        assert_eq!(s.origin, Origin::FencedBlocks);
        assert_eq!(s.yaml, "a: 1\nb: 2");
        assert_eq!(s.to_file(1, 1), (6, 1));
        assert_eq!(s.to_file(2, 1), (14, 3));
    }

    #[test]
    fn crlf_is_accepted() {
        let s = Source::extract("```yaml\r\na: 1\r\n```\r\n").unwrap();
        assert_eq!(s.yaml, "a: 1");
    }
}
