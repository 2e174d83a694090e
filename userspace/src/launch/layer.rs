//! The names of the jail's layers: one enum, so a layer the launcher sets, probes or reports
//! is a compile-time name, never a string that can be misspelled.
//!
//! On the wire (`agentos_syscalls::Layer { name: String }`, the jail report and the host
//! probe) a layer travels as [`LayerName::as_str`]; [`LayerName::parse`] reads it back. The
//! kernel adds entries of its own to the host report that are no jail layer (`probe`,
//! `full_sandbox`); they parse to `None`.
//!
//! Adding a layer: a variant here (in report order), its name in `as_str`, and the compiler
//! then asks [`LayerName::required`] and the probe (`super::probe`) what it means for them;
//! the launcher's steps (`super::steps`) set it.

use std::fmt;

/// One layer of the jail, in the order the jail report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerName {
    Userns,
    Pidns,
    Netns,
    Ipcns,
    Utsns,
    Mountns,
    Rootfs,
    Rlimits,
    Cgroup,
    Capabilities,
    NoNewPrivs,
    Landlock,
    Seccomp,
}

impl LayerName {
    /// Every layer, in report order (the order of the variants).
    pub const ALL: [LayerName; 13] = [
        LayerName::Userns,
        LayerName::Pidns,
        LayerName::Netns,
        LayerName::Ipcns,
        LayerName::Utsns,
        LayerName::Mountns,
        LayerName::Rootfs,
        LayerName::Rlimits,
        LayerName::Cgroup,
        LayerName::Capabilities,
        LayerName::NoNewPrivs,
        LayerName::Landlock,
        LayerName::Seccomp,
    ];

    /// The namespace layers: one `unshare` makes them all, so they fail together.
    pub const NAMESPACES: [LayerName; 6] = [
        LayerName::Userns,
        LayerName::Pidns,
        LayerName::Netns,
        LayerName::Ipcns,
        LayerName::Utsns,
        LayerName::Mountns,
    ];

    /// The name on the wire and in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            LayerName::Userns => "userns",
            LayerName::Pidns => "pidns",
            LayerName::Netns => "netns",
            LayerName::Ipcns => "ipcns",
            LayerName::Utsns => "utsns",
            LayerName::Mountns => "mountns",
            LayerName::Rootfs => "rootfs",
            LayerName::Rlimits => "rlimits",
            LayerName::Cgroup => "cgroup",
            LayerName::Capabilities => "capabilities",
            LayerName::NoNewPrivs => "no_new_privs",
            LayerName::Landlock => "landlock",
            LayerName::Seccomp => "seccomp",
        }
    }

    /// The layer a wire name stands for; `None` for any other name.
    pub fn parse(name: &str) -> Option<LayerName> {
        LayerName::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// Whether a spawn may not go without this layer on the host (unless the kernel runs
    /// with `--allow-degraded-sandbox`): every layer but the cgroup, whose absence leaves the
    /// rlimits in force.
    pub const fn required(self) -> bool {
        match self {
            LayerName::Cgroup => false,
            LayerName::Userns
            | LayerName::Pidns
            | LayerName::Netns
            | LayerName::Ipcns
            | LayerName::Utsns
            | LayerName::Mountns
            | LayerName::Rootfs
            | LayerName::Rlimits
            | LayerName::Capabilities
            | LayerName::NoNewPrivs
            | LayerName::Landlock
            | LayerName::Seccomp => true,
        }
    }

    /// The position of this layer in [`LayerName::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_all_is_in_variant_order() {
        for (i, layer) in LayerName::ALL.into_iter().enumerate() {
            assert_eq!(LayerName::parse(layer.as_str()), Some(layer));
            assert_eq!(layer.index(), i);
            assert_eq!(layer.to_string(), layer.as_str());
        }
        let names: Vec<&str> = LayerName::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(
            names,
            [
                "userns",
                "pidns",
                "netns",
                "ipcns",
                "utsns",
                "mountns",
                "rootfs",
                "rlimits",
                "cgroup",
                "capabilities",
                "no_new_privs",
                "landlock",
                "seccomp",
            ]
        );
        for other in ["", "probe", "full_sandbox", "Landlock", "landlock "] {
            assert_eq!(LayerName::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn namespaces_are_the_first_layers_and_only_the_cgroup_is_optional() {
        assert_eq!(LayerName::NAMESPACES, LayerName::ALL[..6]);
        let optional: Vec<LayerName> = LayerName::ALL
            .into_iter()
            .filter(|l| !l.required())
            .collect();
        assert_eq!(optional, [LayerName::Cgroup]);
    }
}
