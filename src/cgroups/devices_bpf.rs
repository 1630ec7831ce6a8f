//! cgroup v2 device control: a `BPF_PROG_TYPE_CGROUP_DEVICE` program built
//! from the rule list and attached to the container's cgroup.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` where `access_type = access << 16 | type`, and returns 1 to
//! allow or 0 to deny. Rules are emitted last first, so the first match in
//! the program is the last match in the list; falling off the end denies.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::devices::{DevType, Rule, ACC_ALL};
use crate::{bail, Error, Result};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

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

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed repr(C) struct whose
    // layout is the prefix of `union bpf_attr` that `cmd` reads; the size
    // passed is exactly its size, so the kernel reads and writes only it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = CString::new("Apache-2.0").map_err(|e| Error::msg(e.to_string()))?;
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..10].copy_from_slice(b"berth_dev\0");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let verifier = String::from_utf8_lossy(&log[..end]);
            Err(Error::from(e).context(format!(
                "bpf(BPF_PROG_LOAD) device filter ({} insns){}",
                prog.len(),
                if verifier.is_empty() {
                    String::new()
                } else {
                    format!(", verifier: {}", verifier.trim())
                }
            )))
        }
    }
}

/// Ids of the device programs attached to the cgroup `cg`.
fn query(cg: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| Error::from(e).context("bpf(BPF_PROG_QUERY)"))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Load the filter for `rules` and attach it to the cgroup directory `cg`,
/// then detach whatever device programs were attached before (update).
pub fn apply(cg: &OwnedFd, rules: &[Rule]) -> Result<()> {
    let prog = load(&compile(rules))?;
    let old = query(cg).unwrap_or_default();
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| Error::from(e).context("bpf(BPF_PROG_ATTACH) device filter"))?;
    for id in old {
        let mut g = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut g)
            .map_err(|e| Error::from(e).context(format!("bpf(BPF_PROG_GET_FD_BY_ID {id})")))?;
        // SAFETY: GET_FD_BY_ID returned a new fd that nothing else owns.
        let old_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut d = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut d)
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
