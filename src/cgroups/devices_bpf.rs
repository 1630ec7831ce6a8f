//! cgroup v2 device control: a `BPF_PROG_TYPE_CGROUP_DEVICE` program built
//! from the rule list and attached to the container's cgroup.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` where `access_type = access << 16 | type`, and returns 1 to
//! allow or 0 to deny. Rules are emitted last first, so the first match in
//! the program is the last match in the list; falling off the end denies.

use std::os::fd::{AsFd, OwnedFd};

use super::devices::{DevType, Rule, ACC_ALL};
use crate::{bail, sys, Error, Result};

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
pub type Insn = sys::BpfInsn;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_EXIT: u8 = 0x95;

/// Compile `rules` (last match wins, default deny) into a program.
pub fn compile(rules: &[Rule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut checks: Vec<Insn> = Vec::new();
        // Each check jumps past the rest of this rule's block when it fails;
        // the offset is patched once the block's length is known.
        match r.typ {
            DevType::All => {}
            DevType::Char => checks.push(insn(JMP_JNE_K, 2, 0, 0, BPF_DEVCG_DEV_CHAR)),
            DevType::Block => checks.push(insn(JMP_JNE_K, 2, 0, 0, BPF_DEVCG_DEV_BLOCK)),
        }
        if r.access != ACC_ALL {
            // The request must be a subset: (access & rule) == access.
            checks.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
            checks.push(insn(ALU64_AND_K, 1, 0, 0, r.access as i32));
            checks.push(insn(JMP_JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = r.major {
            checks.push(insn(JMP_JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            checks.push(insn(JMP_JNE_K, 5, 0, 0, m as i32));
        }
        let unconditional = checks.is_empty();
        checks.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)));
        checks.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = checks.len();
        for (i, ins) in checks.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                // Jump to the first instruction after this block.
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(checks);
        if unconditional {
            // Matches everything: earlier rules and the default are dead
            // code, which the verifier rejects.
            return prog;
        }
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let mut log = vec![0u8; 64 * 1024];
    sys::bpf_prog_load(
        BPF_PROG_TYPE_CGROUP_DEVICE,
        prog,
        c"Apache-2.0",
        b"berth_dev",
        &mut log,
    )
    .map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]);
        Error::from(e).context(format!(
            "bpf(BPF_PROG_LOAD) device filter ({} insns){}",
            prog.len(),
            if verifier.is_empty() {
                String::new()
            } else {
                format!(", verifier: {}", verifier.trim())
            }
        ))
    })
}

/// Ids of the device programs attached to the cgroup `cg`.
fn query(cg: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let n = sys::bpf_prog_query(cg.as_fd(), BPF_CGROUP_DEVICE, &mut ids)
        .map_err(|e| Error::from(e).context("bpf(BPF_PROG_QUERY)"))?;
    ids.truncate(n);
    Ok(ids)
}

/// Load the filter for `rules` and attach it to the cgroup directory `cg`,
/// then detach whatever device programs were attached before (update).
pub fn apply(cg: &OwnedFd, rules: &[Rule]) -> Result<()> {
    let prog = load(&compile(rules))?;
    let old = query(cg).unwrap_or_default();
    sys::bpf_prog_attach(
        cg.as_fd(),
        prog.as_fd(),
        BPF_CGROUP_DEVICE,
        BPF_F_ALLOW_MULTI,
    )
    .map_err(|e| Error::from(e).context("bpf(BPF_PROG_ATTACH) device filter"))?;
    for id in old {
        let old_fd = sys::bpf_prog_get_fd_by_id(id)
            .map_err(|e| Error::from(e).context(format!("bpf(BPF_PROG_GET_FD_BY_ID {id})")))?;
        sys::bpf_prog_detach(cg.as_fd(), old_fd.as_fd(), BPF_CGROUP_DEVICE)
            .map_err(|e| Error::from(e).context(format!("bpf(BPF_PROG_DETACH {id})")))?;
    }
    Ok(())
}

/// Number of device programs attached to `cg` (for tests and `state`).
pub fn attached(cg: &OwnedFd) -> Result<usize> {
    Ok(query(cg)?.len())
}

pub fn check_len(prog: &[Insn]) -> Result<()> {
    if prog.len() > 1_000_000 {
        bail!("device filter too large ({} instructions)", prog.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::{effective_rules, ACC_READ};
    use super::*;

    /// A tiny interpreter for the subset of eBPF `compile` emits, so the
    /// generated jumps are checked against the rule semantics without a
    /// kernel.
    fn run(prog: &[Insn], typ: i32, access: u32, major: u32, minor: u32) -> i64 {
        let ctx = [((access << 16) | typ as u32), major, minor];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[(i.off / 4) as usize]),
                ALU64_AND_K => r[dst] &= i64::from(i.imm),
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i64::from(i.imm),
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K if r[dst] != i64::from(i.imm) => pc += i.off as usize,
                JMP_JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JMP_JNE_K | JMP_JNE_X => {}
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_agrees_with_rule_semantics() {
        let rules = effective_rules(None).unwrap();
        let prog = compile(&rules);
        check_len(&prog).unwrap();
        for (typ, t) in [(DevType::Char, 2), (DevType::Block, 1)] {
            for (maj, min) in [(1, 3), (1, 1), (136, 4), (5, 2), (8, 0), (10, 200)] {
                for acc in 1..=7 {
                    let want = super::super::devices::allowed(&rules, typ, maj, min, acc);
                    assert_eq!(
                        run(&prog, t, acc, maj, min) == 1,
                        want,
                        "{typ:?} {maj}:{min} access {acc}"
                    );
                }
            }
        }
        assert_eq!(run(&prog, 2, ACC_READ, 1, 3), 1);
        assert_eq!(run(&prog, 1, ACC_READ, 8, 0), 0);
    }
}
