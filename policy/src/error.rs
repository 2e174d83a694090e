//! [`PolicyError`]: every way a policy file can fail to load, with the file, line, column,
//! a code frame and, where a known word is close, a suggestion.

use std::fmt;

/// A located problem in a policy file. Its `Display` is
///
/// ```text
/// .agents/security.md:12:5: unknown key `efect` in rule `policies[0]`
///    |
/// 12 |     efect: allow
///    |     ^^^^^
/// help: did you mean `effect`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    path: String,
    line: u32,
    column: u32,
    len: u32,
    message: String,
    source_line: String,
    help: Option<String>,
}

impl Diagnostic {
    /// Builds a diagnostic; `source_line` is the file's text of `line`, for the code frame.
    pub(crate) fn new(
        path: &str,
        (line, column): (u32, u32),
        len: u32,
        message: String,
        source_line: &str,
        help: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            path: path.to_string(),
            line,
            column,
            len,
            message,
            source_line: source_line.to_string(),
            help,
        }
    }

    /// The file, as given to [`crate::Policy::parse`].
    pub fn path(&self) -> &str {
        &self.path
    }
    /// 1-based line in the `.md` file.
    pub fn line(&self) -> u32 {
        self.line
    }
    /// 1-based column (in characters) in the `.md` file.
    pub fn column(&self) -> u32 {
        self.column
    }
    /// The message alone, without position, frame or help.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The `help:` line's text, if any.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.column, self.message
        )?;
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        // Tabs would shift the caret; show them as single spaces.
        let shown: String = self
            .source_line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let width = shown.chars().count();
        let start = (self.column.max(1) as usize - 1).min(width);
        let len = (self.len.max(1) as usize).min(width.saturating_sub(start).max(1));
        write!(
            f,
            "\n{pad} |\n{num} | {}\n{pad} | {}{}",
            shown.trim_end(),
            " ".repeat(start),
            "^".repeat(len)
        )?;
        if let Some(help) = &self.help {
            write!(f, "\nhelp: {help}")?;
        }
        Ok(())
    }
}

/// Why a policy file did not load. Every variant but [`PolicyError::Read`] has a position.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: cannot read the policy file")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not well-formed YAML (or its Markdown wrapper is broken).
    #[error("{0}")]
    Syntax(Box<Diagnostic>),
    /// Well-formed YAML that is not a valid policy: unknown key, wrong type, bad value.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl PolicyError {
    fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            PolicyError::Read { .. } => None,
            PolicyError::Syntax(d) | PolicyError::Invalid(d) => Some(d),
        }
    }
    /// 1-based line in the `.md` file; 0 when the error has no position (I/O).
    pub fn line(&self) -> u32 {
        self.diagnostic().map_or(0, Diagnostic::line)
    }
    /// 1-based column in the `.md` file; 0 when the error has no position (I/O).
    pub fn column(&self) -> u32 {
        self.diagnostic().map_or(0, Diagnostic::column)
    }
    /// The message alone, without position, code frame or help.
    pub fn message(&self) -> String {
        match self {
            PolicyError::Read { source, .. } => format!("cannot read the policy file: {source}"),
            PolicyError::Syntax(d) | PolicyError::Invalid(d) => d.message().to_string(),
        }
    }
    /// The suggestion, if any ("did you mean `effect`?").
    pub fn help(&self) -> Option<&str> {
        self.diagnostic().and_then(Diagnostic::help)
    }
}
