//! The cases, one module per spec document area.

use crate::case::{Case, Ctx, Level};

mod cgroups;
mod features;
mod hooks;
mod lifecycle;
mod linux;
mod mounts;
mod namespaces;
pub(crate) mod process;

/// Every case, in the order they run.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(lifecycle::cases());
    v.extend(process::cases());
    v.extend(mounts::cases());
    v.extend(namespaces::cases());
    v.extend(linux::cases());
    v.extend(cgroups::cases());
    v.extend(hooks::cases());
    v.extend(features::cases());
    v
}

/// A case with no tags, deviation or mutant (set them with the builders).
pub fn case(
    id: &'static str,
    section: &'static str,
    level: Level,
    requirement: &'static str,
    run: fn(&mut Ctx),
) -> Case {
    Case {
        id,
        section,
        level,
        requirement,
        tags: &[],
        deviation: None,
        mutant: None,
        mutant_on_crun: false,
        run,
    }
}

impl Case {
    pub fn mutant(mut self, m: &'static str) -> Case {
        self.mutant = Some(m);
        self
    }
    pub fn mutant_on_crun(mut self) -> Case {
        self.mutant_on_crun = true;
        self
    }
    pub fn tags(mut self, t: &'static [&'static str]) -> Case {
        self.tags = t;
        self
    }
    pub fn deviation(mut self, d: &'static str) -> Case {
        self.deviation = Some(d);
        self
    }
}
