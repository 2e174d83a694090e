//! Per-agent cgroups: which hierarchy this host lets the kernel use, and the groups themselves.
//!
//! The kernel (not the launcher) creates `agentos-<kernel pid>/<agent id>` under its own group
//! in each usable hierarchy, writes the limits, and hands the launcher the files to join
//! ([`super::CgroupSpec`]; v1 `tasks`, v2 `cgroup.procs`, see [`AgentGroup::join_files`]).
//! cgroup v2 is used where it is delegated (the kernel's own group writable, `memory` and
//! `pids` enabled in its `cgroup.subtree_control`); otherwise cgroup v1 `pids`, `memory` and
//! `cpu`, each where it is writable.
//!
//! Invariants: only plain file operations under `/sys/fs/cgroup` (no `unsafe`); every error
//! names the step and the path; a group is removed only once no process is left in it.

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
pub const MOUNT: &str = "/sys/fs/cgroup";

/// The cgroup version in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One hierarchy the kernel may create groups in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers this hierarchy's groups enforce (`pids`, `memory`, `cpu`).
    pub controllers: Vec<&'static str>,
    /// The kernel's own group in it: `agentos-<pid>` is created here.
    pub base: PathBuf,
}

/// What this host lets the kernel use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub version: Version,
    pub hierarchies: Vec<Hierarchy>,
}

fn writable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// `(hierarchy id, controllers, path)` of each line of `/proc/self/cgroup`.
fn own_groups() -> io::Result<Vec<(String, Vec<String>, String)>> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            let (id, ctl, path) = (p.next()?, p.next()?, p.next()?);
            let ctl = ctl
                .split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            Some((id.to_string(), ctl, path.to_string()))
        })
        .collect())
}

fn join(mount: &Path, own: &str) -> PathBuf {
    mount.join(own.trim_start_matches('/'))
}

fn detect_v2(own: &[(String, Vec<String>, String)]) -> Result<Hierarchy, String> {
    let mount = [
        Path::new(MOUNT).to_path_buf(),
        Path::new(MOUNT).join("unified"),
    ]
    .into_iter()
    .find(|m| m.join("cgroup.controllers").is_file())
    .ok_or("no cgroup v2 hierarchy mounted")?;
    let path = own
        .iter()
        .find(|(id, _, _)| id == "0")
        .map(|(_, _, p)| p.as_str())
        .unwrap_or("/");
    let base = join(&mount, path);
    let control = base.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
    if !(has("memory") && has("pids")) {
        return Err(format!(
            "v2 at {} does not delegate memory+pids ({} lists `{}`)",
            mount.display(),
            control.display(),
            enabled.trim()
        ));
    }
    if !writable(&base) {
        return Err(format!("v2 group {} is not writable", base.display()));
    }
    let mut controllers = vec!["pids", "memory"];
    if has("cpu") {
        controllers.push("cpu");
    }
    Ok(Hierarchy { controllers, base })
}

fn detect_v1(own: &[(String, Vec<String>, String)]) -> Result<Vec<Hierarchy>, String> {
    let mut found = Vec::new();
    let mut why = Vec::new();
    for ctl in ["pids", "memory", "cpu"] {
        let mount = Path::new(MOUNT).join(ctl);
        if !mount.is_dir() {
            why.push(format!("{} not mounted", mount.display()));
            continue;
        }
        let path = own
            .iter()
            .find(|(_, c, _)| c.iter().any(|c| c == ctl))
            .map(|(_, _, p)| p.as_str())
            .unwrap_or("/");
        let mut base = join(&mount, path);
        if !base.is_dir() {
            // The mount shows the hierarchy from our own group (cgroup namespace).
            base = mount;
        }
        if writable(&base) {
            found.push(Hierarchy {
                controllers: vec![ctl],
                base,
            });
        } else {
            why.push(format!("v1 {} is not writable", base.display()));
        }
    }
    if found.iter().any(|h| h.controllers[0] != "cpu") {
        Ok(found)
    } else {
        Err(why.join(", "))
    }
}

/// Finds the hierarchies this process may create groups in; the error says why there is none.
pub fn detect() -> Result<Host, String> {
    let own = own_groups().map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let v2 = match detect_v2(&own) {
        Ok(h) => {
            return Ok(Host {
                version: Version::V2,
                hierarchies: vec![h],
            })
        }
        Err(e) => e,
    };
    match detect_v1(&own) {
        Ok(hierarchies) => Ok(Host {
            version: Version::V1,
            hierarchies,
        }),
        Err(v1) => Err(format!("{v2}; {v1}")),
    }
}

/// `512MiB`, `2GiB`, or bytes.
pub fn format_bytes(b: u64) -> String {
    if b >= 1 << 30 && b % (1 << 30) == 0 {
        format!("{}GiB", b >> 30)
    } else if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{}MiB", b >> 20)
    } else {
        format!("{b} bytes")
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

fn mkdir(path: &Path) -> Result<(), String> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("create {}: {e}", path.display())),
    }
}

impl Host {
    /// `v1 pids,memory,cpu` / `v2 pids,memory`.
    pub fn describe(&self) -> String {
        let v = match self.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
        };
        let ctl: Vec<&str> = self
            .hierarchies
            .iter()
            .flat_map(|h| h.controllers.iter().copied())
            .collect();
        format!("{v} {}", ctl.join(","))
    }

    fn parent_name(kernel_pid: u32) -> String {
        format!("agentos-{kernel_pid}")
    }

    /// The kernel's `agentos-<pid>` dirs, one per hierarchy.
    pub fn parents(&self, kernel_pid: u32) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| h.base.join(Self::parent_name(kernel_pid)))
            .collect()
    }

    /// Creates the kernel's `agentos-<pid>` groups (v2: with the controllers enabled for the
    /// agents' groups below).
    pub fn create_parents(&self, kernel_pid: u32) -> Result<(), String> {
        for (h, dir) in self.hierarchies.iter().zip(self.parents(kernel_pid)) {
            mkdir(&dir)?;
            if self.version == Version::V2 {
                let enable: Vec<String> = h.controllers.iter().map(|c| format!("+{c}")).collect();
                write(&dir.join("cgroup.subtree_control"), &enable.join(" "))?;
            }
        }
        Ok(())
    }

    /// Removes the kernel's `agentos-<pid>` groups (the agents' groups must be gone).
    pub fn remove_parents(&self, kernel_pid: u32) -> Result<(), String> {
        for dir in self.parents(kernel_pid) {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("remove {}: {e}", dir.display())),
            }
        }
        Ok(())
    }

    /// Creates agent `agent_id`'s group in every hierarchy and writes its limits: `pids.max`,
    /// the memory limit (and no swap beyond it), `cpu_millis` thousandths of a CPU of quota.
    /// Returns the group and the layer detail (`v1 pids,memory,cpu: pids.max 128, memory
    /// 512MiB, cpu 0.5 core`). On failure, whatever was made is removed again.
    pub fn create_agent(
        &self,
        kernel_pid: u32,
        agent_id: u64,
        pids_max: u64,
        memory: u64,
        cpu_millis: u64,
    ) -> Result<(AgentGroup, String), String> {
        let group = AgentGroup {
            version: self.version,
            dirs: self
                .hierarchies
                .iter()
                .zip(self.parents(kernel_pid))
                .map(|(h, p)| (h.controllers.clone(), p.join(agent_id.to_string())))
                .collect(),
        };
        match group.apply(pids_max, memory, cpu_millis) {
            Ok(set) => Ok((group, format!("{}: {}", self.describe(), set.join(", ")))),
            Err(e) => {
                for (_, dir) in &group.dirs {
                    let _ = std::fs::remove_dir(dir);
                }
                Err(e)
            }
        }
    }
}

/// One counter of [`AgentGroup::limit_counters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCounter {
    /// `processes` or `memory`.
    pub resource: &'static str,
    /// What it counts, for a sentence (`forks refused at pids.max`).
    pub what: &'static str,
    /// The file it was read from.
    pub file: String,
    pub count: u64,
}

/// One agent's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentGroup {
    pub version: Version,
    /// `(controllers, dir)` per hierarchy.
    pub dirs: Vec<(Vec<&'static str>, PathBuf)>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl AgentGroup {
    fn apply(&self, pids_max: u64, memory: u64, cpu_millis: u64) -> Result<Vec<String>, String> {
        // The quota per period: at least 1 ms (the host kernel's floor).
        let quota = |period: u64| (period * cpu_millis / 1000).max(1000);
        let cores = format!("cpu {} core", cpu_millis as f64 / 1000.0);
        let mut set = Vec::new();
        for (controllers, dir) in &self.dirs {
            mkdir(dir)?;
            for c in controllers {
                match (*c, self.version) {
                    ("pids", _) => {
                        write(&dir.join("pids.max"), &pids_max.to_string())?;
                        set.push(format!("pids.max {pids_max}"));
                    }
                    ("memory", Version::V1) => {
                        write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
                        let memsw = dir.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            write(&memsw, &memory.to_string())?;
                        }
                        set.push(format!("memory {}", format_bytes(memory)));
                    }
                    ("memory", Version::V2) => {
                        write(&dir.join("memory.max"), &memory.to_string())?;
                        let swap = dir.join("memory.swap.max");
                        if swap.exists() {
                            write(&swap, "0")?;
                        }
                        set.push(format!("memory {}", format_bytes(memory)));
                    }
                    ("cpu", Version::V1) => {
                        let period = read_u64(&dir.join("cpu.cfs_period_us")).unwrap_or(100_000);
                        write(&dir.join("cpu.cfs_quota_us"), &quota(period).to_string())?;
                        set.push(cores.clone());
                    }
                    ("cpu", Version::V2) => {
                        let period = 100_000;
                        write(&dir.join("cpu.max"), &format!("{} {period}", quota(period)))?;
                        set.push(cores.clone());
                    }
                    _ => {}
                }
            }
        }
        Ok(set)
    }

    /// The files the launcher writes `0` to, one per hierarchy, to join the group: `tasks` in
    /// v1, `cgroup.procs` in v2.
    ///
    /// v1 `tasks` moves the writing thread only, and a write of `0` there (one thread, the
    /// writer itself) is the one migration current host kernels do without write-locking the
    /// global `cgroup_threadgroup_rwsem` — the lock whose write side waits for an RCU grace
    /// period (on Linux 6.18, an idle 2-core VM: 5–14 ms per join through `cgroup.procs`,
    /// ~0.3 ms through `tasks`; older kernels lock either way, which costs nothing extra). It confines exactly as much as `cgroup.procs` does: the launcher is
    /// single-threaded, and every process it forks afterwards (the init, the agent, all of
    /// their descendants) starts in the cgroups of the thread that forked it. v2 has no such
    /// file for a domain group (`cgroup.threads` is for threaded groups only).
    pub fn join_files(&self) -> Vec<PathBuf> {
        let file = match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.procs",
        };
        self.dirs.iter().map(|(_, d)| d.join(file)).collect()
    }

    /// The `cgroup.procs` files: the processes in the group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.contains(&controller))
            .map(|(_, d)| d.as_path())
    }

    /// Memory in use (bytes), if a memory controller is in force.
    pub fn memory_bytes(&self) -> Option<u64> {
        let dir = self.dir_of("memory")?;
        match self.version {
            Version::V1 => read_u64(&dir.join("memory.usage_in_bytes")),
            Version::V2 => read_u64(&dir.join("memory.current")),
        }
    }

    /// Processes and threads in the group, if a pids controller is in force.
    pub fn pids(&self) -> Option<u64> {
        read_u64(&self.dir_of("pids")?.join("pids.current"))
    }

    /// The group's task limit (`pids.max`; `None` for `max`, no limit).
    pub fn pids_max(&self) -> Option<u64> {
        read_u64(&self.dir_of("pids")?.join("pids.max"))
    }

    /// What the group's controllers counted of their limits: forks refused at `pids.max`
    /// (`pids.events` `max`), processes killed for memory (`oom_kill` of v1's
    /// `memory.oom_control` or v2's `memory.events`), and times memory use met its limit (v1
    /// `memory.failcnt`, v2 `memory.events` `max`). Counters a host lacks are left out.
    pub fn limit_counters(&self) -> Vec<LimitCounter> {
        type Counter = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
        );
        const PIDS: Counter = (
            "pids",
            "processes",
            "forks refused at pids.max",
            "pids.events",
            Some("max"),
        );
        const KILLED: &str = "processes killed at the memory limit";
        const MET: &str = "times memory use met the limit";
        // (controller, resource, what, file, key: a "key N" line of the file, or the file whole)
        #[rustfmt::skip]
        let table: &[Counter] = match self.version {
            Version::V1 => &[
                PIDS,
                ("memory", "memory", KILLED, "memory.oom_control", Some("oom_kill")),
                ("memory", "memory", MET, "memory.failcnt", None),
            ],
            Version::V2 => &[
                PIDS,
                ("memory", "memory", KILLED, "memory.events", Some("oom_kill")),
                ("memory", "memory", MET, "memory.events", Some("max")),
            ],
        };
        table
            .iter()
            .filter_map(|&(controller, resource, what, file, key)| {
                let path = self.dir_of(controller)?.join(file);
                let count = match key {
                    Some(key) => std::fs::read_to_string(&path).ok()?.lines().find_map(|l| {
                        l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()
                    })?,
                    None => read_u64(&path)?,
                };
                Some(LimitCounter {
                    resource,
                    what,
                    file: path.display().to_string(),
                    count,
                })
            })
            .collect()
    }

    /// The pids still in the group (in any of its hierarchies).
    pub fn members(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .procs_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILL to every process left in the group.
    pub fn kill_members(&self) {
        for pid in self.members() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Removes the group's dirs; fails (EBUSY) while a process is left in one.
    pub fn remove(&self) -> Result<(), String> {
        for (_, dir) in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("remove {}: {e}", dir.display())),
            }
        }
        Ok(())
    }

    /// Whether every dir of the group is gone.
    pub fn is_removed(&self) -> bool {
        self.dirs.iter().all(|(_, d)| !d.exists())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_format() {
        assert_eq!(format_bytes(512 << 20), "512MiB");
        assert_eq!(format_bytes(2 << 30), "2GiB");
        assert_eq!(format_bytes(1000), "1000 bytes");
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    /// The v2 writing path against a fake tree (this host's v2 hierarchy delegates nothing):
    /// the kernel's parent with its controllers enabled, then the agent's limits.
    #[test]
    fn v2_limits_are_written_to_a_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host {
            version: Version::V2,
            hierarchies: vec![Hierarchy {
                controllers: vec!["pids", "memory", "cpu"],
                base: tmp.path().to_path_buf(),
            }],
        };
        host.create_parents(42).unwrap();
        let parent = tmp.path().join("agentos-42");
        assert_eq!(
            read(&parent.join("cgroup.subtree_control")),
            "+pids +memory +cpu"
        );
        // A real group shows memory.swap.max when swap accounting is on: so does the fake.
        let dir = parent.join("7");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("memory.swap.max"), "max").unwrap();
        let (group, detail) = host.create_agent(42, 7, 64, 256 << 20, 500).unwrap();
        assert_eq!(
            detail,
            "v2 pids,memory,cpu: pids.max 64, memory 256MiB, cpu 0.5 core"
        );
        assert_eq!(read(&dir.join("pids.max")), "64");
        assert_eq!(read(&dir.join("memory.max")), (256u64 << 20).to_string());
        assert_eq!(read(&dir.join("memory.swap.max")), "0");
        assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
        assert_eq!(group.procs_files(), vec![dir.join("cgroup.procs")]);
        assert_eq!(group.join_files(), vec![dir.join("cgroup.procs")]);
        std::fs::write(dir.join("memory.current"), "1234\n").unwrap();
        assert_eq!(group.memory_bytes(), Some(1234));
        // Two and a half CPUs; the smallest quota is the host kernel's 1 ms floor.
        host.create_agent(42, 8, 8, 1 << 30, 2500).unwrap();
        assert_eq!(read(&parent.join("8/cpu.max")), "250000 100000");
        host.create_agent(42, 9, 8, 1 << 30, 1).unwrap();
        assert_eq!(read(&parent.join("9/cpu.max")), "1000 100000");
        // Without swap accounting no swap file is made up.
        assert!(!parent.join("8/memory.swap.max").exists());
        // What the controllers counted of their limits.
        std::fs::write(dir.join("pids.current"), "64\n").unwrap();
        assert_eq!((group.pids(), group.pids_max()), (Some(64), Some(64)));
        std::fs::write(dir.join("pids.events"), "max 17\n").unwrap();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        let counted: Vec<(&str, u64)> = group
            .limit_counters()
            .iter()
            .map(|c| (c.what, c.count))
            .collect();
        assert_eq!(
            counted,
            [
                ("forks refused at pids.max", 17),
                ("processes killed at the memory limit", 1),
                ("times memory use met the limit", 5),
            ]
        );
    }

    #[test]
    fn v1_cpu_quota_follows_the_groups_period() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host {
            version: Version::V1,
            hierarchies: vec![Hierarchy {
                controllers: vec!["cpu"],
                base: tmp.path().to_path_buf(),
            }],
        };
        host.create_parents(42).unwrap();
        let dir = tmp.path().join("agentos-42/3");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cpu.cfs_period_us"), "50000\n").unwrap();
        let (_, detail) = host.create_agent(42, 3, 8, 1 << 30, 1500).unwrap();
        assert_eq!(detail, "v1 cpu: cpu 1.5 core");
        assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "75000");
        // v1 parents need no subtree_control.
        assert!(!tmp
            .path()
            .join("agentos-42/cgroup.subtree_control")
            .exists());
    }

    #[test]
    fn group_files() {
        let host = Host {
            version: Version::V1,
            hierarchies: vec![
                Hierarchy {
                    controllers: vec!["pids"],
                    base: "/sys/fs/cgroup/pids".into(),
                },
                Hierarchy {
                    controllers: vec!["memory"],
                    base: "/sys/fs/cgroup/memory/x".into(),
                },
            ],
        };
        assert_eq!(host.describe(), "v1 pids,memory");
        assert_eq!(
            host.parents(42),
            vec![
                PathBuf::from("/sys/fs/cgroup/pids/agentos-42"),
                PathBuf::from("/sys/fs/cgroup/memory/x/agentos-42"),
            ]
        );
        let g = AgentGroup {
            version: Version::V1,
            dirs: vec![(vec!["pids"], "/sys/fs/cgroup/pids/agentos-42/7".into())],
        };
        assert_eq!(
            g.procs_files(),
            vec![PathBuf::from(
                "/sys/fs/cgroup/pids/agentos-42/7/cgroup.procs"
            )]
        );
        assert_eq!(
            g.join_files(),
            vec![PathBuf::from("/sys/fs/cgroup/pids/agentos-42/7/tasks")]
        );
    }
}
