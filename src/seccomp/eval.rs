//! A classic-BPF interpreter for seccomp programs: what the kernel's
//! seccomp would return for one syscall. Used to check berth's programs
//! (and, in tests, to compare them with libseccomp's) without installing
//! them. It runs every instruction the kernel's seccomp accepts (loads of
//! `seccomp_data` words, the scratch memory, ALU, jumps, returns) and
//! refuses what it refuses (out-of-range loads and jumps, falling off the
//! end, division by zero is a `ret 0` in the kernel's interpreter).

/// `struct seccomp_data`, the program's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 32-bit word at byte `off` (little-endian layout).
    fn word(&self, off: u32) -> Option<u32> {
        if !off.is_multiple_of(4) {
            return None;
        }
        Some(match off {
            0 => self.nr,
            4 => self.arch,
            8 => self.instruction_pointer as u32,
            12 => (self.instruction_pointer >> 32) as u32,
            16..=60 => {
                let a = self.args[((off - 16) / 8) as usize];
                if (off - 16).is_multiple_of(8) {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => return None,
        })
    }
}

/// `seccomp_data` is 64 bytes.
const DATA_LEN: u32 = 64;
const MEMWORDS: usize = 16;

/// Run `prog` on `d`: the 32-bit value it returns, or why the kernel would
/// have refused the program.
pub fn run(prog: &[libc::sock_filter], d: &SeccompData) -> Result<u32, String> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    loop {
        let Some(i) = prog.get(pc) else {
            return Err(format!("fell off the end at {pc}"));
        };
        let at = pc;
        pc += 1;
        let k = i.k;
        let bad = |what: &str| Err(format!("{what} at {at} (code {:#x}, k {k:#x})", i.code));
        let class = i.code & 0x07;
        match class {
            // BPF_LD / BPF_LDX
            0x00 | 0x01 => {
                let v = match i.code & 0xe0 {
                    0x00 => k, // BPF_IMM
                    0x20 if class == 0 && i.code & 0x18 == 0 => match d.word(k) {
                        Some(w) => w, // BPF_ABS, W
                        None => return bad("load out of seccomp_data"),
                    },
                    0x60 if (k as usize) < MEMWORDS => mem[k as usize], // BPF_MEM
                    0x80 => DATA_LEN,                                   // BPF_LEN
                    _ => return bad("unsupported load"),
                };
                if class == 0 {
                    a = v;
                } else {
                    x = v;
                }
            }
            // BPF_ST / BPF_STX
            0x02 | 0x03 => {
                if k as usize >= MEMWORDS {
                    return bad("store out of scratch memory");
                }
                mem[k as usize] = if class == 0x02 { a } else { x };
            }
            // BPF_ALU
            0x04 => {
                let src = if i.code & 0x08 != 0 { x } else { k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 if src == 0 => return Ok(0),
                    0x30 => a / src,
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 if src == 0 => return Ok(0),
                    0x90 => a % src,
                    0xa0 => a ^ src,
                    _ => return bad("unsupported ALU op"),
                };
            }
            // BPF_JMP
            0x05 => {
                let src = if i.code & 0x08 != 0 { x } else { k };
                let off = match i.code & 0xf0 {
                    0x00 => k as usize,
                    op => {
                        let taken = match op {
                            0x10 => a == src,
                            0x20 => a > src,
                            0x30 => a >= src,
                            0x40 => a & src != 0,
                            _ => return bad("unsupported jump"),
                        };
                        usize::from(if taken { i.jt } else { i.jf })
                    }
                };
                pc = match pc.checked_add(off) {
                    Some(p) if p < prog.len() => p,
                    _ => return bad("jump out of the program"),
                };
            }
            // BPF_RET
            0x06 => {
                return match i.code & 0x18 {
                    0x00 => Ok(k),
                    0x10 => Ok(a),
                    _ => bad("unsupported return"),
                }
            }
            // BPF_MISC: TAX, TXA
            _ => match i.code & 0xf8 {
                0x00 => x = a,
                0x80 => a = x,
                _ => return bad("unsupported misc op"),
            },
        }
    }
}
