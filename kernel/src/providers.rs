//! Tool providers: the programs that perform `Call` actions, declared by the operator.
//!
//! `agentos-kernel`, `agentctl kernel start` and `agentctl run` take
//! `--provider ACTION=PROGRAM[,network][,ro=PATH][,rw=DIR][,arg=VALUE]` (repeatable, one per
//! action):
//!
//! - `PROGRAM`: an absolute path to an executable (a script with a `#!` line is fine; its
//!   interpreter must lie in the runtime, e.g. `#!/usr/bin/python3 -I`);
//! - `network`: the provider shares the host's network namespace and may open `AF_INET` and
//!   `AF_INET6` sockets (every other tool has no network at all);
//! - `ro=PATH`: a host file or directory the provider may read (at the same path);
//! - `rw=DIR`: a host directory the provider may read and write (at the same path; e.g. the
//!   directory of a SQLite database, for its journal);
//! - `arg=VALUE`: an argument passed to the program (repeatable, in order).
//!
//! A provider runs jailed like an `Exec` tool (see [`crate::tools`]), reads one JSON object on
//! stdin — `{"action": …, "params": …, "constraints": {…}}` — and writes one JSON value on
//! stdout; see `calls/call.rs` for the protocol.

use std::path::PathBuf;

/// One declared provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The `Call` action it performs (`api_call`, `database_query`, …).
    pub action: String,
    /// Its program (absolute, canonical).
    pub program: PathBuf,
    /// Shares the host's network.
    pub network: bool,
    /// Host paths it may read.
    pub read_only: Vec<PathBuf>,
    /// Host directories it may read and write.
    pub read_write: Vec<PathBuf>,
    /// Arguments after the program name.
    pub args: Vec<String>,
}

impl Provider {
    /// Parses `ACTION=PROGRAM[,network][,ro=PATH][,rw=DIR][,arg=VALUE]`, checking that the
    /// program and paths exist (they are made canonical).
    pub fn parse(text: &str) -> Result<Provider, String> {
        let usage = "give ACTION=PROGRAM[,network][,ro=PATH][,rw=DIR][,arg=VALUE]";
        let (action, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("provider `{text}` has no `=`; {usage}"))?;
        if action.is_empty()
            || !action
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "provider action `{action}` must be lowercase letters, digits and `_` (like `api_call`)"
            ));
        }
        let mut parts = rest.split(',');
        let program = parts.next().unwrap_or_default();
        let program = existing(program, "program")?;
        if !program.is_file() {
            return Err(format!(
                "provider program {} is not a file",
                program.display()
            ));
        }
        let mut p = Provider {
            action: action.to_string(),
            program,
            network: false,
            read_only: Vec::new(),
            read_write: Vec::new(),
            args: Vec::new(),
        };
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "network" => p.network = true,
                Some(("ro", path)) => p.read_only.push(existing(path, "ro path")?),
                Some(("rw", path)) => {
                    let dir = existing(path, "rw dir")?;
                    if !dir.is_dir() {
                        return Err(format!("provider rw={} is not a directory", dir.display()));
                    }
                    p.read_write.push(dir);
                }
                Some(("arg", value)) => p.args.push(value.to_string()),
                _ => return Err(format!("provider option `{opt}` is unknown; {usage}")),
            }
        }
        Ok(p)
    }

    /// Refuses paths that overlap the kernel's state dir (other agents' files, the recorder).
    pub fn check_apart_from(&self, state_dir: &std::path::Path) -> Result<(), String> {
        let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        for p in std::iter::once(&self.program)
            .chain(&self.read_only)
            .chain(&self.read_write)
        {
            if p.starts_with(&state) || state.starts_with(p) {
                return Err(format!(
                    "provider {} path {} overlaps the kernel's state dir {}",
                    self.action,
                    p.display(),
                    state.display()
                ));
            }
        }
        Ok(())
    }
}

/// Checks a kernel's providers: each apart from the state dir, one per action.
pub fn check_all(providers: &[Provider], state_dir: &std::path::Path) -> Result<(), String> {
    for (i, p) in providers.iter().enumerate() {
        p.check_apart_from(state_dir)?;
        if providers[..i].iter().any(|q| q.action == p.action) {
            return Err(format!("action {} has two providers", p.action));
        }
    }
    Ok(())
}

fn existing(path: &str, what: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!("provider {what} `{path}` is not an absolute path"));
    }
    std::fs::canonicalize(path).map_err(|e| format!("provider {what} {path}: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_options_and_refuses_bad_ones() {
        let p = Provider::parse("api_call=/bin/sh,network,ro=/etc/hostname,rw=/tmp,arg=x,arg=y")
            .unwrap();
        assert_eq!(p.action, "api_call");
        assert!(p.network);
        assert_eq!(p.args, vec!["x", "y"]);
        assert_eq!(p.read_write, vec![std::fs::canonicalize("/tmp").unwrap()]);
        assert!(Provider::parse("api_call").unwrap_err().contains("no `=`"));
        assert!(Provider::parse("Api=/bin/sh")
            .unwrap_err()
            .contains("lowercase"));
        assert!(Provider::parse("a=bin/sh")
            .unwrap_err()
            .contains("absolute"));
        assert!(Provider::parse("a=/nonexistent/x").is_err());
        assert!(Provider::parse("a=/bin/sh,wat")
            .unwrap_err()
            .contains("unknown"));
        assert!(Provider::parse("a=/bin/sh,rw=/etc/hostname")
            .unwrap_err()
            .contains("not a directory"));
    }
}
