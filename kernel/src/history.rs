//! What the kernel keeps on disk about each agent it started, readable without a kernel.
//!
//! Layout, per agent, under `STATE_DIR/agents/<id>/` (0700):
//! - `agent.json` — an [`AgentRecord`]: id, name, program, spawn time, and once it ended
//!   how and when. Written (temp file, renamed) when the agent starts and again when it ends.
//! - `output.log` — its stdout and stderr (`crate::agent::LogSink`).
//! - `checkpoints/<n>` — its working-memory checkpoints (`crate::tree::checkpoints`).
//! - `scratch/` — its private scratch dir, removed when it ends.
//!
//! `STATE_DIR/agents/next-id` holds the lowest id the kernel may give next once agents were
//! forgotten ([`forget`]), so that an id named in the flight recorder is never given to a
//! second agent, even after its dir is gone.
//!
//! `agentctl` reads this module's files to show the logs, memory and checkpoints of agents no
//! kernel knows any more (`logs`, `ps -a`, `memory`, `checkpoints`); the kernel writes them
//! and forgets agents (`rm`, `prune`).
//!
//! Never: this module writes or removes anything under the recorder (the flight recorder is
//! append-only evidence); a reader here changes a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentos_syscalls::control::{AgentCounters, AgentRef, ExitStatus};
use agentos_syscalls::{AgentId, DirEntry, Errno, FileStat};
use agentos_vfs::{MemFs, Store};
use serde::{Deserialize, Serialize};

/// The file name of an agent's record in its dir.
pub const RECORD_FILE: &str = "agent.json";

/// The file that keeps ids of forgotten agents from being given again.
pub const NEXT_ID_FILE: &str = "next-id";

/// What the kernel keeps about one agent in `STATE_DIR/agents/<id>/agent.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: u64,
    pub name: Option<String>,
    pub program: String,
    pub args: Vec<String>,
    pub policy_path: String,
    /// Spawn time, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// When it ended, milliseconds since the Unix epoch; `None` while it runs, or when its
    /// kernel died before it could say (the agent died with it).
    pub ended_ms: Option<u64>,
    pub exit: Option<ExitStatus>,
    /// Its counters when it ended (absent in a record written before then).
    #[serde(default)]
    pub counters: Option<AgentCounters>,
}

impl AgentRecord {
    /// A record for an agent dir without `agent.json` (made by an older kernel): its id only.
    fn bare(id: u64) -> Self {
        Self {
            id,
            name: None,
            program: String::new(),
            args: Vec::new(),
            policy_path: String::new(),
            started_ms: 0,
            ended_ms: None,
            exit: None,
            counters: None,
        }
    }
}

/// `STATE_DIR/agents/<id>`.
pub fn agent_dir(agents_dir: &Path, id: AgentId) -> PathBuf {
    agents_dir.join(id.0.to_string())
}

/// `STATE_DIR/agents/<id>/output.log`.
pub fn log_path(agents_dir: &Path, id: AgentId) -> PathBuf {
    agent_dir(agents_dir, id).join("output.log")
}

/// Writes `record` into its agent's dir: to a temp file, then renamed over the old one.
pub fn write_record(agents_dir: &Path, record: &AgentRecord) -> std::io::Result<()> {
    let dir = agent_dir(agents_dir, AgentId(record.id));
    let tmp = dir.join(".agent.json.tmp");
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&json)?;
    f.write_all(b"\n")?;
    drop(f);
    std::fs::rename(&tmp, dir.join(RECORD_FILE))
}

/// The ids of the agent dirs under `agents_dir`, ascending (one directory read; no record
/// is parsed).
pub fn ids(agents_dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(agents_dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The record of agent `id`, or a bare one when its dir has no readable `agent.json`;
/// `None` when it has no dir.
pub fn read_record(agents_dir: &Path, id: u64) -> Option<AgentRecord> {
    let dir = agent_dir(agents_dir, AgentId(id));
    if !dir.is_dir() {
        return None;
    }
    let parsed = std::fs::read(dir.join(RECORD_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<AgentRecord>(&b).ok())
        .filter(|r| r.id == id);
    Some(parsed.unwrap_or_else(|| AgentRecord::bare(id)))
}

/// Every agent with a dir under `agents_dir`, oldest (lowest id) first.
pub fn read_all(agents_dir: &Path) -> Vec<AgentRecord> {
    ids(agents_dir)
        .into_iter()
        .filter_map(|id| read_record(agents_dir, id))
        .collect()
}

/// The agent `r` names on disk: by id, or the newest with that name.
pub fn find(agents_dir: &Path, r: &AgentRef) -> Option<AgentRecord> {
    match r {
        AgentRef::Id(id) => read_record(agents_dir, id.0),
        AgentRef::Name(n) => read_all(agents_dir)
            .into_iter()
            .rev()
            .find(|a| a.name.as_deref() == Some(n.as_str())),
    }
}

/// The first id a kernel starting on `agents_dir` may give: above every agent dir and above
/// every forgotten agent ([`NEXT_ID_FILE`]).
pub fn first_free_id(agents_dir: &Path) -> u64 {
    let from_dirs = ids(agents_dir).last().copied().unwrap_or(0) + 1;
    let from_file = std::fs::read_to_string(agents_dir.join(NEXT_ID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    from_dirs.max(from_file)
}

/// Forgets agent `id`: raises [`NEXT_ID_FILE`] above it, then removes its dir (its record,
/// output log and checkpoints). The caller has checked that it has ended. The flight
/// recorder and the persistent memory of a named agent (kept by name, for the next agent of
/// that name) are not touched.
pub fn forget(agents_dir: &Path, id: AgentId) -> std::io::Result<()> {
    let next = first_free_id(agents_dir).max(id.0 + 1);
    let tmp = agents_dir.join(format!(".{NEXT_ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{next}\n"))?;
    std::fs::rename(&tmp, agents_dir.join(NEXT_ID_FILE))?;
    match std::fs::remove_dir_all(agent_dir(agents_dir, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// One working-memory checkpoint on disk, as `agentctl checkpoints` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    pub number: u64,
    /// When it was taken, milliseconds since the Unix epoch.
    pub taken_ms: u64,
    pub files: u64,
    /// Bytes of file data it holds.
    pub bytes: u64,
    /// Bytes of its file on disk.
    pub disk_bytes: u64,
    pub path: PathBuf,
}

/// The checkpoints of agent `id`, oldest first; a file that does not decode is an error.
pub fn checkpoints(agents_dir: &Path, id: AgentId) -> Result<Vec<CheckpointSummary>, Errno> {
    let dir = agent_dir(agents_dir, id).join("checkpoints");
    crate::tree::checkpoint_numbers(&dir)
        .into_iter()
        .map(|n| {
            let file = crate::tree::load_checkpoint_file(&dir, n)?;
            let path = dir.join(n.to_string());
            Ok(CheckpointSummary {
                number: n,
                taken_ms: file.taken_ms,
                files: file.files.len() as u64,
                bytes: file.files.iter().map(|f| f.2.len() as u64).sum(),
                disk_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                path,
            })
        })
        .collect()
}

/// What an agent kept, read from the state dir without a kernel and without changing it:
/// its persistent memory (`/mem/episodic`, `/mem/semantic`) from a copy in memory of
/// `memory.redb`, and its working memory (`/mem/working`) as of a checkpoint (it lives only
/// in the kernel while the agent runs).
pub struct MemoryView {
    store: Option<Store>,
    namespace: Option<String>,
    working: Option<(u64, MemFs)>,
    checkpoints: Vec<u64>,
    checkpoint_dir: PathBuf,
    id: AgentId,
}

impl std::fmt::Debug for MemoryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryView")
            .field("namespace", &self.namespace)
            .field("working", &self.working.as_ref().map(|w| w.0))
            .finish()
    }
}

/// A failure reading what an agent kept.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot read the persistent memory store {path}: {reason}")]
    Store { path: String, reason: String },
    #[error("{0}")]
    Path(String),
}

impl MemoryView {
    /// Opens the view of `record`'s memory in `state_dir`, with `/mem/working` from
    /// checkpoint `checkpoint` (the latest when `None`).
    pub fn open(
        state_dir: &Path,
        record: &AgentRecord,
        checkpoint: Option<u64>,
    ) -> Result<MemoryView, ViewError> {
        let id = AgentId(record.id);
        let agents_dir = state_dir.join("agents");
        // Unnamed agents' persistent memory ends with them.
        let namespace = record
            .name
            .as_deref()
            .map(|n| crate::tree::namespace_of(Some(n), id).0);
        let path = state_dir.join("memory.redb");
        let store = match (&namespace, std::fs::read(&path)) {
            (Some(_), Ok(bytes)) => {
                Some(Store::open_snapshot(bytes).map_err(|e| ViewError::Store {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?)
            }
            (None, _) => None,
            (Some(_), Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            (Some(_), Err(e)) => {
                return Err(ViewError::Store {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let cp_dir = agent_dir(&agents_dir, id).join("checkpoints");
        let checkpoints = crate::tree::checkpoint_numbers(&cp_dir);
        let wanted = checkpoint.or_else(|| checkpoints.last().copied());
        let working = match wanted {
            Some(n) => {
                let file = crate::tree::load_checkpoint_file(&cp_dir, n)
                    .map_err(|e| ViewError::Path(e.to_string()))?;
                let fs = MemFs::restore(file.files, u64::MAX, u64::MAX)
                    .map_err(|e| ViewError::Path(e.to_string()))?;
                Some((n, fs))
            }
            None => None,
        };
        Ok(MemoryView {
            store,
            namespace,
            working,
            checkpoints,
            checkpoint_dir: cp_dir,
            id,
        })
    }

    /// The checkpoint `/mem/working` is shown from.
    pub fn working_checkpoint(&self) -> Option<u64> {
        self.working.as_ref().map(|w| w.0)
    }

    fn no_working(&self) -> Errno {
        Errno::NotFound {
            what: format!(
                "/mem/working of agent {}: it has no checkpoint (working memory lives in the kernel only while the agent runs; take one with `agentctl signal {} SIGUSR1`)",
                self.id, self.id
            ),
        }
    }

    fn no_persistent(&self, area: &str) -> Errno {
        let why = if self.namespace.is_none() {
            "an unnamed agent's persistent memory ends with it"
        } else {
            "nothing was kept"
        };
        Errno::NotFound {
            what: format!("/mem/{area} of agent {} ({why})", self.id),
        }
    }

    /// The entries of the directory at the agent's VFS path `path`.
    pub fn list(&self, path: &str) -> Result<Vec<DirEntry>, Errno> {
        use agentos_vfs::Mount;
        match agentos_vfs::resolve(path)? {
            Mount::Inner("/") | Mount::Inner("/mem") => {
                let dir = |name: &str| DirEntry {
                    name: name.into(),
                    kind: agentos_syscalls::FileKind::Directory,
                    size: 0,
                };
                Ok(if agentos_vfs::normalize(path)? == "/" {
                    vec![dir("mem"), dir("state")]
                } else {
                    vec![dir("episodic"), dir("semantic"), dir("working")]
                })
            }
            Mount::Inner(_) => Ok(vec![DirEntry {
                name: "checkpoints".into(),
                kind: agentos_syscalls::FileKind::Directory,
                size: 0,
            }]),
            Mount::Working(p) => self.working_fs()?.list(&p),
            Mount::Episodic(p) => self.store_list("episodic", &p),
            Mount::Semantic(p) => self.store_list("semantic", &p),
            Mount::Checkpoints(p) => match self.checkpoint_of(&p)? {
                Some((fs, inner)) => fs.list(&inner),
                None => Ok(self
                    .checkpoints
                    .iter()
                    .map(|n| DirEntry {
                        name: n.to_string(),
                        kind: agentos_syscalls::FileKind::Directory,
                        size: 0,
                    })
                    .collect()),
            },
            other => Err(Self::not_kept(&other, path)),
        }
    }

    /// What is at `path` (a file or a directory).
    pub fn stat(&self, path: &str) -> Result<FileStat, Errno> {
        use agentos_vfs::Mount;
        match agentos_vfs::resolve(path)? {
            Mount::Working(p) => self.working_fs()?.stat(&p),
            Mount::Episodic(p) => self.store_stat("episodic", &p),
            Mount::Semantic(p) => self.store_stat("semantic", &p),
            Mount::Checkpoints(p) => match self.checkpoint_of(&p)? {
                Some((fs, inner)) => fs.stat(&inner),
                None => Ok(dir_stat()),
            },
            Mount::Inner(_) => Ok(dir_stat()),
            other => Err(Self::not_kept(&other, path)),
        }
    }

    /// The bytes of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Errno> {
        use agentos_vfs::Mount;
        match agentos_vfs::resolve(path)? {
            Mount::Working(p) => self.working_fs()?.read(&p, 0, None),
            Mount::Episodic(p) => self.store_read("episodic", &p),
            Mount::Semantic(p) => self.store_read("semantic", &p),
            Mount::Checkpoints(p) => match self.checkpoint_of(&p)? {
                Some((fs, inner)) => fs.read(&inner, 0, None),
                None => Err(Errno::IsDirectory {
                    path: "/state/checkpoints".into(),
                }),
            },
            Mount::Inner(p) => Err(Errno::IsDirectory { path: p.into() }),
            other => Err(Self::not_kept(&other, path)),
        }
    }

    fn not_kept(_: &agentos_vfs::Mount, path: &str) -> Errno {
        Errno::NotFound {
            what: format!(
                "{path}: only /mem/episodic, /mem/semantic, /mem/working and /state/checkpoints are kept by the kernel (the workspace is a host dir; /policy and /ipc are not stored)"
            ),
        }
    }

    fn working_fs(&self) -> Result<&MemFs, Errno> {
        self.working
            .as_ref()
            .map(|w| &w.1)
            .ok_or_else(|| self.no_working())
    }

    /// `/<n>/<rest>` under `/state/checkpoints`: checkpoint n's files and the inner path.
    fn checkpoint_of(&self, rest: &str) -> Result<Option<(MemFs, String)>, Errno> {
        crate::tree::open_checkpoint_path(&self.checkpoint_dir, rest)
    }

    fn store_parts(&self, area: &str) -> Result<(&Store, &str), Errno> {
        match (&self.store, &self.namespace) {
            (Some(s), Some(ns)) => Ok((s, ns.as_str())),
            _ => Err(self.no_persistent(area)),
        }
    }

    fn store_list(&self, area: &str, p: &str) -> Result<Vec<DirEntry>, Errno> {
        match self.store_parts(area) {
            Ok((s, ns)) => s.list(ns, area, p),
            // An area with nothing kept lists empty at its root.
            Err(_) if p == "/" => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn store_stat(&self, area: &str, p: &str) -> Result<FileStat, Errno> {
        if p == "/" {
            return Ok(dir_stat());
        }
        let (s, ns) = self.store_parts(area)?;
        s.stat(ns, area, p)
    }

    fn store_read(&self, area: &str, p: &str) -> Result<Vec<u8>, Errno> {
        let (s, ns) = self.store_parts(area)?;
        s.read(ns, area, p, 0, None)
    }
}

fn dir_stat() -> FileStat {
    FileStat {
        kind: agentos_syscalls::FileKind::Directory,
        size: 0,
        modified_ms: 0,
        read_only: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, name: Option<&str>) -> AgentRecord {
        AgentRecord {
            id,
            name: name.map(String::from),
            program: "/bin/true".into(),
            args: vec!["x".into()],
            policy_path: "/p/security.md".into(),
            started_ms: 10 * id,
            ended_ms: None,
            exit: None,
            counters: None,
        }
    }

    #[test]
    fn records_round_trip_and_names_find_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path();
        for (id, name) in [(1, Some("a")), (2, None), (3, Some("a"))] {
            std::fs::create_dir(agents.join(id.to_string())).unwrap();
            write_record(agents, &record(id, name)).unwrap();
        }
        // An older kernel's dir without a record, and a stray file.
        std::fs::create_dir(agents.join("4")).unwrap();
        std::fs::write(agents.join("5"), "not a dir").unwrap();
        let all = read_all(agents);
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(all[0], record(1, Some("a")));
        assert_eq!(all[3], AgentRecord::bare(4));
        assert_eq!(find(agents, &AgentRef::Name("a".into())).unwrap().id, 3);
        assert_eq!(find(agents, &AgentRef::Id(AgentId(2))).unwrap().id, 2);
        assert!(find(agents, &AgentRef::Name("b".into())).is_none());
        assert!(find(agents, &AgentRef::Id(AgentId(9))).is_none());
    }

    #[test]
    fn a_forgotten_id_is_never_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path();
        assert_eq!(first_free_id(agents), 1);
        for id in [1, 2, 3] {
            std::fs::create_dir_all(agents.join(format!("{id}/checkpoints"))).unwrap();
            write_record(agents, &record(id, None)).unwrap();
        }
        assert_eq!(first_free_id(agents), 4);
        forget(agents, AgentId(3)).unwrap();
        forget(agents, AgentId(1)).unwrap();
        assert!(!agents.join("3").exists() && !agents.join("1").exists());
        assert_eq!(read_all(agents).len(), 1);
        // The highest dir is gone, its id is not given again.
        assert_eq!(first_free_id(agents), 4);
        // Forgetting what is already gone is not an error.
        forget(agents, AgentId(3)).unwrap();
    }
}
