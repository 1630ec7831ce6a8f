//! cgroup v2 specifics, run inside the test guest by `make test-cgroup2`
//! (the build host is cgroup v1). On a host that is not cgroup v2 every test
//! returns early with a note, unless BERTH_GUEST is set (the guest sets it),
//! where a non-v2 host is a failure.

mod cgroups_common;

use std::os::fd::AsRawFd;
use std::path::Path;

use berth::cgroups::{detect, devices_bpf, resources, Mode};
use cgroups_common::*;

fn on_v2() -> bool {
    let mode = detect::layout().expect("detect cgroups").mode;
    if mode == Mode::Unified {
        return true;
    }
    assert!(
        std::env::var_os("BERTH_GUEST").is_none(),
        "the test guest must be cgroup v2, found {mode:?}"
    );
    eprintln!("skipped: host is {mode:?}, not cgroup v2 (run `make test-cgroup2`)");
    false
}

fn read(cg: &TestCgroup, f: &str) -> String {
    let p = cg.m.unified().unwrap().join(f);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn init_is_born_in_its_cgroup() {
    if !on_v2() {
        return;
    }
    let cg = TestCgroup::new("born", None);
    let want = format!("0::{}\n", cg.m.path);
    let want = want.as_bytes();
    // The child's first act is to read its own cgroup: with
    // CLONE_INTO_CGROUP there is no moment it runs anywhere else.
    let mut c = spawn(&cg, || {
        let mut buf = [0u8; 512];
        // SAFETY: reading into a local buffer from a freshly opened file.
        let n = unsafe {
            let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                return 2;
            }
            libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len())
        };
        if n > 0 && &buf[..n as usize] == want {
            0
        } else {
            1
        }
    });
    assert_eq!(
        c.wait(),
        Exit::Code(0),
        "child was not born in 0::{}",
        cg.m.path
    );
}

#[test]
fn device_filter_is_replaced_on_update() {
    if !on_v2() {
        return;
    }
    let cg = TestCgroup::new("bpf", None);
    let fd = cg.m.open_leaf().unwrap().unwrap();
    assert_eq!(devices_bpf::attached(&fd).unwrap(), 1);
    let mut c = spawn(&cg, || open_errno(b"/dev/kmsg\0"));
    assert_eq!(c.wait(), Exit::Code(libc::EPERM));
    cg.m.update(&res(r#"{"devices":[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":11,"access":"rw"},
            {"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#))
        .unwrap();
    assert_eq!(
        devices_bpf::attached(&fd).unwrap(),
        1,
        "old filter detached"
    );
    let mut c = spawn(&cg, || open_errno(b"/dev/kmsg\0"));
    assert_eq!(c.wait(), Exit::Code(0));
    // The default allow-list comes after the spec's rules: /dev/null stays.
    let mut c = spawn(&cg, || open_errno(b"/dev/null\0"));
    assert_eq!(c.wait(), Exit::Code(0));
    let _ = fd.as_raw_fd();
}

#[test]
fn hugetlb_limit_stops_huge_page_use() {
    if !on_v2() {
        return;
    }
    let free: u64 =
        std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    assert!(
        free >= 4,
        "the guest reserves huge pages at boot ({free} free)"
    );
    let one_page = r#"{"hugepageLimits":[{"pageSize":"2MB","limit":2097152}]}"#;
    let cg = TestCgroup::new("huge", Some(res(one_page)));
    assert_eq!(read(&cg, "hugetlb.2MB.max"), "2097152");
    let huge = |pages: usize| -> i32 {
        let len = pages * (2 << 20);
        // SAFETY: anonymous huge page mapping, written within its length.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return 10;
            }
            let mut off = 0;
            while off < len {
                std::ptr::write_volatile((p as *mut u8).add(off), 1);
                off += 2 << 20;
            }
        }
        0
    };
    let mut c = spawn(&cg, || huge(1));
    assert_eq!(c.wait(), Exit::Code(0), "one huge page fits the limit");
    let mut c = spawn(&cg, || huge(2));
    let e = c.wait();
    assert!(
        e == Exit::Code(10) || e == Exit::Signal(libc::SIGBUS),
        "two huge pages must not fit: {e:?}"
    );
    let st = cg.m.stats().unwrap();
    assert!(st.hugetlb.contains_key("2MB"), "{:?}", st.hugetlb);
}

#[test]
fn resources_are_converted_to_v2_files() {
    if !on_v2() {
        return;
    }
    let cg = TestCgroup::new(
        "conv",
        Some(res(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":100663296},
                "cpu":{"shares":2048,"quota":50000,"period":100000,"burst":1000,"idle":0},
                "blockIO":{"weight":500},
                "pids":{"limit":-1}}"#,
        )),
    );
    assert_eq!(read(&cg, "memory.max"), "67108864");
    assert_eq!(read(&cg, "memory.low"), "33554432");
    assert_eq!(
        read(&cg, "memory.swap.max"),
        (100663296 - 67108864).to_string()
    );
    assert_eq!(
        read(&cg, "cpu.weight"),
        resources::shares_to_weight(2048).to_string()
    );
    assert_eq!(read(&cg, "cpu.max"), "50000 100000");
    assert_eq!(read(&cg, "cpu.max.burst"), "1000");
    assert_eq!(read(&cg, "pids.max"), "max");
    assert_eq!(
        read(&cg, "io.weight"),
        format!("default {}", resources::blkio_weight_to_io(500))
    );
    // Changing only the period keeps the quota.
    cg.m.update(&res(r#"{"cpu":{"period":200000}}"#)).unwrap();
    assert_eq!(read(&cg, "cpu.max"), "50000 200000");
}

#[test]
fn unified_keys_are_written_and_validated() {
    if !on_v2() {
        return;
    }
    let cg = TestCgroup::new(
        "unified",
        Some(res(
            r#"{"unified":{"memory.high":"50331648","pids.max":"9"}}"#,
        )),
    );
    assert_eq!(read(&cg, "memory.high"), "50331648");
    assert_eq!(read(&cg, "pids.max"), "9");
    for (json, needle) in [
        (
            r#"{"unified":{"../memory.max":"1"}}"#,
            "not a cgroup file name",
        ),
        (
            r#"{"unified":{"memory.nosuchfile":"1"}}"#,
            "memory.nosuchfile does not exist",
        ),
        (
            r#"{"unified":{"net_cls.classid":"1"}}"#,
            "needs the net_cls controller",
        ),
    ] {
        let e = cg.m.update(&res(json)).unwrap_err();
        assert!(e.message().contains(needle), "{json}: {e}");
    }
}

#[test]
fn v1_only_settings_are_refused_clearly() {
    if !on_v2() {
        return;
    }
    for (json, needle) in [
        (r#"{"network":{"classID":1}}"#, "net_cls"),
        (r#"{"memory":{"swappiness":10}}"#, "memory.swappiness"),
        (r#"{"cpu":{"realtimeRuntime":1000}}"#, "cpu.rt_"),
        (r#"{"rdma":{"mlx5_0":{"hcaHandles":3}}}"#, "rdma.max"),
    ] {
        let e = TestCgroup::try_new("v1only", Some(res(json)))
            .err()
            .unwrap_or_else(|| panic!("{json} accepted"));
        assert!(e.message().contains(needle), "{json}: {e}");
        let m = berth::cgroups::Manager::new(
            &format!("berth-test-{}-v1only", std::process::id()),
            None,
            false,
        )
        .unwrap();
        assert!(!m.unified().unwrap().exists(), "{json} left a cgroup");
    }
}

#[test]
fn sigkill_uses_cgroup_kill() {
    if !on_v2() {
        return;
    }
    let cg = TestCgroup::new("cgkill", None);
    assert!(Path::new(&cg.m.unified().unwrap().join("cgroup.kill")).exists());
    let mut kids: Vec<Child> = (0..2)
        .map(|_| {
            spawn(&cg, || loop {
                // SAFETY: sleep until killed.
                unsafe { libc::pause() };
            })
        })
        .collect();
    cg.m.kill_all(libc::SIGKILL).unwrap();
    for k in &mut kids {
        assert_eq!(k.wait(), Exit::Signal(libc::SIGKILL));
    }
}

/// A loop device over a file in /tmp (the guest's tmpfs), detached on drop.
struct Loop {
    dev: std::fs::File,
    path: String,
    rdev: (u32, u32),
}

impl Loop {
    fn new(size: u64) -> Loop {
        use std::os::unix::fs::MetadataExt;
        let ctl = std::fs::File::open("/dev/loop-control").expect("open /dev/loop-control");
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), 0x4C82) };
        assert!(
            n >= 0,
            "LOOP_CTL_GET_FREE: {}",
            std::io::Error::last_os_error()
        );
        let backing_path = format!("/tmp/berth-loop-{}", std::process::id());
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&backing_path)
            .unwrap();
        backing.set_len(size).unwrap();
        let path = format!("/dev/loop{n}");
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // SAFETY: LOOP_SET_FD with an open fd of the backing file.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), 0x4C00, backing.as_raw_fd()) };
        assert_eq!(r, 0, "LOOP_SET_FD: {}", std::io::Error::last_os_error());
        let _ = std::fs::remove_file(&backing_path);
        let rdev = std::fs::metadata(&path).unwrap().rdev();
        Loop {
            dev,
            path,
            rdev: (libc::major(rdev), libc::minor(rdev)),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD on our loop device.
        unsafe { libc::ioctl(self.dev.as_raw_fd(), 0x4C01) };
    }
}

/// Child body: read `bytes` from `path` with O_DIRECT; 0 on success.
fn direct_read(path: &std::ffi::CStr, bytes: usize) -> i32 {
    const CHUNK: usize = 64 << 10;
    // SAFETY: an aligned anonymous buffer, reads stay within it.
    unsafe {
        let buf = libc::mmap(
            std::ptr::null_mut(),
            CHUNK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if buf == libc::MAP_FAILED {
            return 2;
        }
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECT);
        if fd < 0 {
            return 3;
        }
        let mut done = 0;
        while done < bytes {
            if libc::read(fd, buf, CHUNK) != CHUNK as isize {
                return 4;
            }
            done += CHUNK;
        }
    }
    0
}

#[test]
fn io_max_throttles_reads_from_a_device() {
    if !on_v2() {
        return;
    }
    let lo = Loop::new(16 << 20);
    let path = std::ffi::CString::new(lo.path.clone()).unwrap();
    let (maj, min) = lo.rdev;
    // Block devices are outside the default allow-list.
    let allow = format!(
        r#""devices":[{{"allow":true,"type":"b","major":{maj},"minor":{min},"access":"r"}}]"#
    );
    let free = TestCgroup::new("io-free", Some(res(&format!("{{{allow}}}"))));
    let t = std::time::Instant::now();
    let mut c = spawn(&free, || direct_read(&path, 3 << 20));
    assert_eq!(c.wait(), Exit::Code(0));
    let unthrottled = t.elapsed();
    let cg = TestCgroup::new(
        "io",
        Some(res(&format!(
            r#"{{{allow},"blockIO":{{"throttleReadBpsDevice":[{{"major":{maj},"minor":{min},"rate":1048576}}]}}}}"#
        ))),
    );
    assert!(read(&cg, "io.max").contains(&format!("{maj}:{min} rbps=1048576")));
    let t = std::time::Instant::now();
    let mut c = spawn(&cg, || direct_read(&path, 3 << 20));
    assert_eq!(c.wait(), Exit::Code(0));
    let throttled = t.elapsed();
    eprintln!(
        "figure: 3 MiB O_DIRECT read: {unthrottled:?} unthrottled, {throttled:?} at rbps=1MiB/s"
    );
    // 3 MiB at 1 MiB/s: about 2-3 s (the first slice is allowed at once).
    assert!(
        throttled >= std::time::Duration::from_millis(1500) && throttled > unthrottled * 2,
        "throttled read took {throttled:?}, unthrottled {unthrottled:?}"
    );
    let st = cg.m.stats().unwrap();
    let read_bytes: u64 = st
        .blkio
        .io_service_bytes_recursive
        .iter()
        .filter(|e| e.major == u64::from(maj) && e.minor == u64::from(min) && e.op == "Read")
        .map(|e| e.value)
        .sum();
    assert!(
        read_bytes >= 3 << 20,
        "io.stat shows {read_bytes} bytes read"
    );
}

#[test]
fn nested_absolute_paths_get_controllers_at_every_level() {
    if !on_v2() {
        return;
    }
    let top = format!("/berth-nest-{}", std::process::id());
    let m = berth::cgroups::Manager::new("nest", Some(&format!("{top}/a/b")), false).unwrap();
    let root = m.unified_mount.clone().unwrap();
    let r = std::panic::catch_unwind(|| {
        m.create(Some(&res(
            r#"{"pids":{"limit":3},"memory":{"limit":33554432}}"#,
        )))
        .unwrap();
        let leaf = m.unified().unwrap().to_path_buf();
        assert_eq!(leaf, root.join(top.trim_start_matches('/')).join("a/b"));
        let cg = TestCgroup { m: m.clone() };
        let mut c = spawn(&cg, || fork_until_refused(50));
        assert_eq!(c.wait(), Exit::Code(2));
        assert_eq!(read(&cg, "memory.max"), "33554432");
    });
    // TestCgroup removed the leaf; the parents are ours to remove.
    for d in [format!("{top}/a"), top.clone()] {
        let _ = std::fs::remove_dir(root.join(d.trim_start_matches('/')));
    }
    assert!(!root.join(top.trim_start_matches('/')).exists());
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn kernel_memory_settings_are_accepted_and_ignored_as_runc_does() {
    if !on_v2() {
        return;
    }
    let cg = TestCgroup::new(
        "kmem2",
        Some(res(r#"{"memory":{"kernel":1048576,"kernelTCP":1048576}}"#)),
    );
    assert!(cg.m.unified().unwrap().exists());
}
