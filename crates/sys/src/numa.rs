//! NUMA memory policy (set_mempolicy(2), get_mempolicy(2)). libc has the
//! syscall numbers but no wrappers.

use std::io;

use crate::check;

/// set_mempolicy(2) for the calling thread: `mode` (MPOL_* | MPOL_F_*
/// flags) over the nodes whose bits are set in `nodemask`.
pub fn set_mempolicy(mode: libc::c_int, nodemask: &[libc::c_ulong]) -> io::Result<()> {
    let bits = nodemask.len() * libc::c_ulong::BITS as usize;
    let ptr = if nodemask.is_empty() {
        std::ptr::null()
    } else {
        nodemask.as_ptr()
    };
    // The kernel reads maxnode - 1 bits (its historic off-by-one), so one
    // more than the mask holds is passed.
    let maxnode = if bits == 0 { 0 } else { bits + 1 };
    // SAFETY: the kernel reads at most maxnode - 1 bits, which `nodemask`
    // holds; a null mask with maxnode 0 means "no nodes".
    check(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) }).map(|_| ())
}

/// get_mempolicy(2) of the calling thread: (mode with flags, nodemask of
/// `words` longs).
pub fn get_mempolicy(words: usize) -> io::Result<(libc::c_int, Vec<libc::c_ulong>)> {
    let mut mode: libc::c_int = 0;
    let mut mask = vec![0 as libc::c_ulong; words.max(1)];
    let maxnode = mask.len() * libc::c_ulong::BITS as usize;
    // SAFETY: mode and mask are writable and the mask holds maxnode bits;
    // addr is unused without MPOL_F_ADDR.
    check(unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask.as_mut_ptr(),
            maxnode,
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    Ok((mode, mask))
}
