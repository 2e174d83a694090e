//! The agent table: every agent this kernel started, by id, oldest first.
//!
//! The spawn flow inserts an agent only once its launcher runs and its reaper is about to
//! start ([`crate::spawn`]); an ended agent stays listed, with its exit, until the operator
//! forgets it ([`AgentTable::remove_ended`], `agentctl rm`/`prune`); a live one is never removed.
//! Each method takes the lock for its own statement and returns owned handles, so no caller
//! holds the table while it works on an agent.
//!
//! Never: two agents under one id (ids come from one counter; a second insert of an id is
//! refused); a lookup that returns an ended agent as the owner of a process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use agentos_syscalls::control::{AgentRef, AgentState, ControlError, ControlErrorKind};
use agentos_syscalls::AgentId;

use super::{lock, Agent};

/// The deepest process chain [`AgentTable::agent_of_process`] walks up.
const MAX_DEPTH: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct AgentTable {
    agents: Mutex<BTreeMap<AgentId, Arc<Agent>>>,
}

impl AgentTable {
    /// Adds `agent`; `false` (and no change) when its id is taken.
    pub fn insert(&self, agent: Arc<Agent>) -> bool {
        let mut agents = lock(&self.agents);
        if agents.contains_key(&agent.id) {
            return false;
        }
        agents.insert(agent.id, agent);
        true
    }

    pub fn get(&self, id: AgentId) -> Option<Arc<Agent>> {
        lock(&self.agents).get(&id).cloned()
    }

    /// The agent `r` names: by id, or the newest agent with that name.
    pub fn find(&self, r: &AgentRef) -> Result<Arc<Agent>, ControlError> {
        let found = match r {
            AgentRef::Id(id) => self.get(*id),
            AgentRef::Name(n) => lock(&self.agents)
                .values()
                .rev()
                .find(|a| a.name.as_deref() == Some(n.as_str()))
                .cloned(),
        };
        found.ok_or_else(|| {
            crate::util::control_error(
                ControlErrorKind::NotFound,
                format!("no agent {r} on this kernel"),
                "list agents with `agentctl ps`",
            )
        })
    }

    /// Removes agent `id` if it has ended (`agentctl rm`); `false` when it is live. An id
    /// not in the table is `true`: there is nothing of it to keep.
    pub fn remove_ended(&self, id: AgentId) -> bool {
        let mut agents = lock(&self.agents);
        match agents.get(&id) {
            Some(a) if !a.is_exited() => false,
            Some(_) => {
                agents.remove(&id);
                true
            }
            None => true,
        }
    }

    /// Every agent, oldest first.
    pub fn list(&self) -> Vec<Arc<Agent>> {
        lock(&self.agents).values().cloned().collect()
    }

    /// The agents that have not ended, oldest first.
    pub fn live(&self) -> Vec<Arc<Agent>> {
        lock(&self.agents)
            .values()
            .filter(|a| !a.is_exited())
            .cloned()
            .collect()
    }

    /// `(not exited, all)`, counted under one lock.
    pub fn counts(&self) -> (usize, usize) {
        let agents = lock(&self.agents);
        let running = agents
            .values()
            .filter(|a| a.current_state() != AgentState::Exited)
            .count();
        (running, agents.len())
    }

    /// The live agent whose process tree holds `pid`, found by walking up the parents in
    /// `parents` (`(pid, ppid)` of every process). Linear in the number of processes and
    /// agents: one pass builds each map, and the walk looks each ancestor up once.
    pub fn agent_of_process(&self, parents: &[(u32, u32)], pid: u32) -> Option<Arc<Agent>> {
        let parents: HashMap<u32, u32> = parents.iter().copied().collect();
        let by_pid: HashMap<u32, Arc<Agent>> = lock(&self.agents)
            .values()
            .filter_map(|a| Some((a.life().live_pid()?, Arc::clone(a))))
            .collect();
        let mut cur = pid;
        for _ in 0..MAX_DEPTH {
            if let Some(a) = by_pid.get(&cur) {
                return Some(Arc::clone(a));
            }
            match parents.get(&cur).copied() {
                Some(p) if p > 1 => cur = p,
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::test_agent;
    use agentos_syscalls::control::ExitStatus;

    #[test]
    fn find_by_id_and_by_newest_name_and_list_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let t = AgentTable::default();
        assert!(t.insert(test_agent(dir.path(), 1, Some("a"), 100)));
        assert!(t.insert(test_agent(dir.path(), 2, Some("b"), 200)));
        assert!(t.insert(test_agent(dir.path(), 3, Some("a"), 300)));
        // A second agent under a taken id is refused and changes nothing.
        assert!(!t.insert(test_agent(dir.path(), 2, Some("c"), 400)));
        let ids = |v: Vec<Arc<Agent>>| v.iter().map(|a| a.id.0).collect::<Vec<_>>();
        assert_eq!(ids(t.list()), [1, 2, 3]);
        assert_eq!(
            t.find(&AgentRef::Id(AgentId(2))).unwrap().name.as_deref(),
            Some("b")
        );
        assert_eq!(t.find(&AgentRef::Name("a".into())).unwrap().id, AgentId(3));
        let missing = t.find(&AgentRef::Id(AgentId(9))).unwrap_err();
        assert_eq!(missing.kind, ControlErrorKind::NotFound);
        assert_eq!(missing.message, "no agent 9 on this kernel");
        assert!(t.find(&AgentRef::Name("c".into())).is_err());
        t.get(AgentId(1))
            .unwrap()
            .life()
            .finish(ExitStatus::Code(0))
            .unwrap();
        assert_eq!(ids(t.live()), [2, 3]);
        assert_eq!(t.counts(), (2, 3));
        assert_eq!(t.list().len(), 3);
        // Only an ended agent is forgotten.
        assert!(!t.remove_ended(AgentId(2)));
        assert!(t.remove_ended(AgentId(1)));
        assert!(t.remove_ended(AgentId(9)));
        assert_eq!(ids(t.list()), [2, 3]);
    }

    #[test]
    fn a_process_belongs_to_the_live_agent_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = AgentTable::default();
        t.insert(test_agent(dir.path(), 1, None, 100));
        t.insert(test_agent(dir.path(), 2, None, 200));
        // 100 → 101 → 102 → 103; 200 → 201; 300 is another user's; 1 is init.
        let parents = [
            (100, 1),
            (101, 100),
            (102, 101),
            (103, 102),
            (200, 1),
            (201, 200),
            (300, 1),
        ];
        let owner = |pid| t.agent_of_process(&parents, pid).map(|a| a.id.0);
        assert_eq!(owner(103), Some(1));
        assert_eq!(owner(100), Some(1));
        assert_eq!(owner(201), Some(2));
        assert_eq!(owner(300), None);
        assert_eq!(owner(999), None);
        // An ended agent owns nothing (its launcher's pid may be someone else's now).
        t.get(AgentId(1))
            .unwrap()
            .life()
            .finish(ExitStatus::Code(0))
            .unwrap();
        assert_eq!(owner(103), None);
        assert_eq!(owner(201), Some(2));
    }

    #[test]
    fn a_cycle_in_the_process_table_ends_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let t = AgentTable::default();
        t.insert(test_agent(dir.path(), 1, None, 100));
        assert!(t.agent_of_process(&[(5, 6), (6, 5)], 5).is_none());
    }
}
