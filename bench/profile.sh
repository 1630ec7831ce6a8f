#!/usr/bin/env bash
# Where `berth run` of /bin/true spends its time: perf stat and perf record
# (software clocks: this VM has no hardware counters), strace counts and a
# phase timeline, callgrind instruction counts. Runs inside the benchmark's
# own environment (same private mount namespace, bundles and tmpfs state
# roots), via `berth-bench env`:
#
#   target/.../berth-bench env --no-peers -- bash bench/profile.sh OUT.md
#   (make bench-profile: writes bench/PROFILE.md, raw files in target/bench/profile)
#
# Figures under strace or valgrind are inflated; read them as shares.
set -uo pipefail
out_md=${1:?output markdown}
: "${BENCH_RUNTIME_0:?run me through berth-bench env}"
B=$BENCH_RUNTIME_0 R=$BENCH_ROOT_0 RO=${BENCH_RUNTIME_RO:-}
BT=$BENCH_BUNDLE_TRUE
P=${PROFILE_DIR:-target/bench/profile}
N=${PROFILE_RUNS:-100}
rm -rf "$P" && mkdir -p "$P"
n=0
id() { n=$((n + 1)); echo "${BENCH_PREFIX}p$n"; }
run() { "$1" --root "$R" run --bundle "$BT" "$(id)"; }
md=$P/PROFILE.md
{
echo "# berth start-up profile: \`run\` of /bin/true"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) cores; berth \`$B\`. Made by \`make bench-profile\` (bench/profile.sh) in the benchmark's environment. The machine may be shared: times are noisy, counts are not."
echo
} >"$md"

# 1. perf stat: CPU, page faults, context switches per run.
if perf stat -e task-clock true >/dev/null 2>&1; then
	{
		echo "## perf stat ($N runs each; software events)"
		echo
		echo "| command | task-clock ms | page faults | context switches | |"
		echo "|---|---:|---:|---:|---:|"
	} >>"$md"
	stat1() { # label cmd...
		local label=$1
		shift
		perf stat -x, -r "$N" -e task-clock,page-faults,context-switches -o "$P/stat-$label.csv" "$@" >/dev/null 2>&1
		local tc pf cs el
		tc=$(awk -F, '$3=="task-clock"{printf "%.2f", $1}' "$P/stat-$label.csv")
		pf=$(awk -F, '$3=="page-faults"{printf "%.0f", $1}' "$P/stat-$label.csv")
		cs=$(awk -F, '$3=="context-switches"{printf "%.1f", $1}' "$P/stat-$label.csv")
		el=$(grep -o 'seconds time elapsed' "$P/stat-$label.csv" >/dev/null && awk '/time elapsed/{printf "%.2f", $1*1000}' "$P/stat-$label.csv")
		echo "| $label | $tc | $pf | $cs | ${el:-} |" >>"$md"
	}
	# `run` deletes its container, so every run of one command can reuse its id.
	stat1 berth "$B" --root "$R" run --bundle "$BT" "$(id)"
	[ -n "$RO" ] && stat1 "berth from a read-only bind (no re-exec)" "$RO" --root "$R" run --bundle "$BT" "$(id)"
	for i in 1 2 3; do
		v=BENCH_RUNTIME_$i r=BENCH_ROOT_$i l=BENCH_LABEL_$i
		[ -n "${!v:-}" ] && stat1 "${!l}" "${!v}" --root "${!r}" run --bundle "$BT" "$(id)"
	done
	# shellcheck disable=SC2086
	stat1 "floor: unshare" "$(command -v unshare)" $BENCH_UNSHARE_FLAGS "$BT/rootfs/bin/true"
	stat1 "floor: fork+exec" "$BT/rootfs/bin/true"
	echo >>"$md"

	# 2. perf record: where the CPU time goes, kernel and user.
	perf record -q -e cpu-clock -F 20000 -g -o "$P/perf.data" -- \
		sh -c "for i in \$(seq $N); do $B --root $R run --bundle $BT ${BENCH_PREFIX}rec\$i; done" >/dev/null 2>&1
	perf report -i "$P/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null >"$P/perf-dso.txt"
	perf report -i "$P/perf.data" --children --sort sym --stdio -g none 2>/dev/null >"$P/perf-children.txt"
	perf report -i "$P/perf.data" --no-children --comm berth --sort dso,sym --stdio -g none 2>/dev/null >"$P/perf-self.txt"
	{
		echo "## perf record (cpu-clock, $N runs of berth run; % of all samples)"
		echo
		echo "By object (\`/\` is the re-exec'd copy of berth: a detached bind mount has no path):"
		echo
		echo '```'
		grep '%' "$P/perf-dso.txt" | head -8
		echo '```'
		echo
		echo "Inclusive, by kernel entry point and page faults (children included):"
		echo
		echo '```'
		grep -E '\[k\] (__x64_sys_|__do_sys_|asm_exc_page_fault|ret_from_fork)' "$P/perf-children.txt" | head -25
		echo '```'
		echo
		echo "Self time of berth's processes, top symbols:"
		echo
		echo '```'
		grep '%' "$P/perf-self.txt" | head -25
		echo '```'
		echo
	} >>"$md"
else
	echo "perf does not work here: perf figures skipped" >>"$md"
fi

# 3. Phases from tracepoints (exec, exit, clone3, cgroup attach, pivot_root,
# execveat): cheap enough not to change what they measure.
if perf record -q -o "$P/probe.data" -e syscalls:sys_exit_pivot_root true >/dev/null 2>&1; then
	perf record -q -o "$P/phases.data" \
		-e sched:sched_process_exec,sched:sched_process_exit,syscalls:sys_enter_clone3,syscalls:sys_exit_clone3 \
		-e syscalls:sys_exit_pivot_root,cgroup:cgroup_attach_task,syscalls:sys_enter_execveat -- \
		sh -c "for i in \$(seq $N); do $B --root $R run --bundle $BT ${BENCH_PREFIX}ph\$i; done" >/dev/null 2>&1
	{
		echo "## Phases of \`berth run\` ($N runs; tracepoints, µs)"
		echo
		echo "The init waits for berth's go after the cgroup attach, so \"last attach to pivot_root\" is the init's own setup."
		echo
		echo '```'
		perf script -i "$P/phases.data" -F comm,pid,time,event,trace 2>/dev/null | perl "$(dirname "$0")/phases.pl" "$B"
		echo '```'
		echo
	} >>"$md"
fi

# 3b. Off-CPU: where berth's processes sleep in the kernel (sched_switch
# with call graphs), by the syscall and the kernel function they wait in.
if perf record -q -o "$P/probe.data" -e sched:sched_switch true >/dev/null 2>&1; then
	{
		echo "## Off-CPU time of berth's processes ($N runs; sched_switch call graphs)"
		echo
		echo "Time a berth process (the runtime, or the init before its execve) spends blocked in the kernel (D state), per run on average, by the syscall it was in (\`exit_to_user_mode_loop\`: deferred work on the way back to user space, such as the last close of a file) and the function it waited in."
		echo
	} >>"$md"
	offcpu() { # label binary
		perf record -q -o "$P/offcpu-$1.data" -e sched:sched_switch -g -- \
			sh -c "for i in \$(seq $N); do $2 --root $R run --bundle $BT ${BENCH_PREFIX}off\$i; done" >/dev/null 2>&1
		{
			echo "$1:"
			echo
			echo '```'
			perf script -i "$P/offcpu-$1.data" 2>/dev/null | perl "$(dirname "$0")/offcpu.pl" "$N" | head -12
			echo '```'
			echo
		} >>"$md"
	}
	offcpu berth "$B"
	[ -n "$RO" ] && offcpu "berth-from-a-read-only-bind" "$RO"
fi

# 4. strace: syscall counts of one run.
if command -v strace >/dev/null; then
	strace -f -c -o "$P/strace-c.txt" "$B" --root "$R" run --bundle "$BT" "$(id)" >/dev/null 2>&1
	strace -f -ttt -T -y -o "$P/strace-T.txt" "$B" --root "$R" run --bundle "$BT" "$(id)" >/dev/null 2>&1
	{
		echo "## strace -c -f (one run; counts exact, times inflated by strace)"
		echo
		echo '```'
		head -32 "$P/strace-c.txt"
		grep -E 'total' "$P/strace-c.txt" | tail -1
		echo '```'
		echo
		echo "Processes: $(awk '{print $1}' "$P/strace-T.txt" | sort -u | wc -l), syscalls: $(grep -c . "$P/strace-T.txt") (full timeline: strace-T.txt)."
		echo
	} >>"$md"
fi

# 5. callgrind: instructions of berth's own process (valgrind 3.19 knows
# neither open_tree nor clone3: the run stops at the first of them that it
# refuses, so each count covers the work before that point).
if command -v valgrind >/dev/null; then
	cg() { # label binary
		valgrind --tool=callgrind --callgrind-out-file="$P/callgrind.$1" "$2" --root "$R" run --bundle "$BT" "$(id)" >"$P/callgrind.$1.log" 2>&1
		local ir stop
		ir=$(grep -E 'Collected' "$P/callgrind.$1.log" | awk '{print $4}')
		stop=$(grep -E '^berth' "$P/callgrind.$1.log" | head -1)
		echo "| $1 | $ir | ${stop:-} |" >>"$md"
	}
	{
		echo "## callgrind: instructions executed by berth before the first syscall valgrind refuses"
		echo
		echo "| binary | instructions | where it stopped |"
		echo "|---|---:|---|"
	} >>"$md"
	cg berth "$B"
	[ -n "$RO" ] && cg ro-bind "$RO"
	{
		echo
		if [ -n "$RO" ] && [ -f "$P/callgrind.ro-bind" ]; then
			echo "Top functions (self) of the read-only-bind run, up to clone3:"
			echo
			echo '```'
			callgrind_annotate "$P/callgrind.ro-bind" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -25 | sed 's/ \[[^]]*\]$//'
			echo '```'
		fi
		echo
	} >>"$md"
fi
cp "$md" "$out_md"
echo "[profile] wrote $out_md (raw files in $P)" >&2
