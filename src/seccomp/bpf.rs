//! A tiny classic-BPF assembler with forward labels.
//!
//! Conditional jumps in cBPF carry 8-bit offsets, so the code generator keeps
//! them short by construction and uses `ja` (32-bit offset) for anything far;
//! `finish` still checks every offset so a bug becomes an error, never a
//! wrong filter.

use libc::sock_filter;

use crate::Result;

// Instruction classes and fields (linux/filter.h, linux/bpf_common.h).
pub(crate) const BPF_LD: u16 = 0x00;
pub(crate) const BPF_ALU: u16 = 0x04;
pub(crate) const BPF_JMP: u16 = 0x05;
pub(crate) const BPF_RET: u16 = 0x06;
pub(crate) const BPF_W: u16 = 0x00;
pub(crate) const BPF_ABS: u16 = 0x20;
pub(crate) const BPF_AND: u16 = 0x50;
pub(crate) const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JGT: u16 = 0x20;
pub(crate) const BPF_JGE: u16 = 0x30;
pub(crate) const BPF_K: u16 = 0x00;

/// The kernel refuses longer programs (BPF_MAXINSNS).
pub(crate) const MAX_INSNS: usize = 4096;

/// Where a conditional branch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The next instruction.
    Next,
    /// Skip this many instructions after the next one.
    Skip(u8),
    Label(Label),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(usize);

struct Insn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
    /// For `ja`: the label whose offset goes into `k`.
    ja: Option<Label>,
}

#[derive(Default)]
pub(crate) struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Place `l` at the next instruction.
    pub(crate) fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    fn push(&mut self, code: u16, k: u32, jt: Target, jf: Target, ja: Option<Label>) {
        self.insns.push(Insn {
            code,
            k,
            jt,
            jf,
            ja,
        });
    }

    /// `A = seccomp_data[offset]` (32-bit word).
    pub(crate) fn load(&mut self, offset: u32) {
        self.push(
            BPF_LD | BPF_W | BPF_ABS,
            offset,
            Target::Next,
            Target::Next,
            None,
        );
    }

    /// `A &= k`.
    pub(crate) fn and(&mut self, k: u32) {
        self.push(
            BPF_ALU | BPF_AND | BPF_K,
            k,
            Target::Next,
            Target::Next,
            None,
        );
    }

    /// `if A <op> k goto jt else goto jf`, op one of BPF_JEQ/JGT/JGE.
    pub(crate) fn jump(&mut self, op: u16, k: u32, jt: Target, jf: Target) {
        self.push(BPF_JMP | op | BPF_K, k, jt, jf, None);
    }

    /// Unconditional jump, any distance forward.
    pub(crate) fn ja(&mut self, to: Label) {
        self.push(BPF_JMP | BPF_JA, 0, Target::Next, Target::Next, Some(to));
    }

    pub(crate) fn ret(&mut self, k: u32) {
        self.push(BPF_RET | BPF_K, k, Target::Next, Target::Next, None);
    }

    /// Resolve labels into offsets.
    pub(crate) fn finish(self) -> Result<Vec<sock_filter>> {
        if self.insns.len() > MAX_INSNS {
            crate::bail!(
                "seccomp filter needs {} BPF instructions, the kernel accepts at most {MAX_INSNS}",
                self.insns.len()
            );
        }
        let labels = &self.labels;
        let dist = |pc: usize, l: Label| -> Result<usize> {
            match labels[l.0] {
                Some(at) if at > pc => Ok(at - pc - 1),
                Some(_) => crate::bail!("seccomp BPF: backward jump at {pc} (internal error)"),
                None => crate::bail!("seccomp BPF: unbound label at {pc} (internal error)"),
            }
        };
        let short = |pc: usize, t: Target| -> Result<u8> {
            match t {
                Target::Next => Ok(0),
                Target::Skip(n) => Ok(n),
                Target::Label(l) => {
                    let d = dist(pc, l)?;
                    u8::try_from(d).map_err(|_| {
                        crate::Error::msg(format!(
                            "seccomp BPF: conditional jump of {d} instructions at {pc} (internal error)"
                        ))
                    })
                }
            }
        };
        let mut out = Vec::with_capacity(self.insns.len());
        for (pc, i) in self.insns.iter().enumerate() {
            let k = match i.ja {
                // Offsets are bounded by MAX_INSNS, so they fit in u32.
                Some(l) => dist(pc, l)? as u32,
                None => i.k,
            };
            out.push(sock_filter {
                code: i.code,
                jt: short(pc, i.jt)?,
                jf: short(pc, i.jf)?,
                k,
            });
        }
        Ok(out)
    }
}
