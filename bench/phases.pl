#!/usr/bin/perl
# Phases of `berth run` from tracepoints (perf script of bench/profile.sh's
# record: exec, exit, clone3, cgroup attach, pivot_root, execveat).
# Prints the median, min and max µs of each phase over the runs found.
use strict;
use warnings;

my $berth = shift or die "usage: phases.pl BERTH_PATH < perf-script-output\n";
my (%runs, @seq);    # by berth pid
my %child_of;        # init pid -> berth pid
while (<STDIN>) {
    my ($pid, $t, $ev, $rest) = /^\s*\S+\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$/ or next;
    if ($ev eq 'sched:sched_process_exec') {
        my ($file) = $rest =~ /filename=(\S+)/;
        if ($file eq $berth) { $runs{$pid} = { start => $t }; push @seq, $pid; next }
        if (my $r = $runs{$pid}) { $r->{reexec} = $t if $file =~ m{^/dev/fd/|^/proc/}; next }
        if (my $p = $child_of{$pid}) {
            my $r = $runs{$p};
            # The clone3 that made this child (not the thread berth may
            # start first, see src/process/host_binary.rs).
            @$r{qw(clone_in clone)} = @{ $r->{clones}{$pid} } unless $r->{exec};
            $r->{exec} //= $t;
        }
        next;
    }
    if (my $r = $runs{$pid}) {
        $r->{execveat} //= $t if $ev eq 'syscalls:sys_enter_execveat';
        $r->{clone_enter} = $t if $ev eq 'syscalls:sys_enter_clone3';
        if ($ev eq 'syscalls:sys_exit_clone3') {
            my ($ret) = $rest =~ /(0x[0-9a-f]+)/;
            if ($ret && hex $ret) {
                $child_of{hex $ret} = $pid;
                $r->{clones}{hex $ret} = [$r->{clone_enter}, $t];
            }
        }
        if ($ev eq 'cgroup:cgroup_attach_task') { $r->{attach0} //= $t; $r->{attach1} = $t }
        $r->{end} = $t if $ev eq 'sched:sched_process_exit';
        next;
    }
    if (my $p = $child_of{$pid}) {
        my $r = $runs{$p};
        $r->{pivot} //= $t if $ev eq 'syscalls:sys_exit_pivot_root';
        $r->{exit} = $t if $ev eq 'sched:sched_process_exit' && $r->{exec};
    }
}
my (%ph, @order);
sub add {
    my ($k, $a, $b) = @_;
    return unless defined $a && defined $b;
    push @order, $k unless $ph{$k};
    push @{ $ph{$k} }, ($b - $a) * 1e6;
}
my $n = 0;
for my $r (map { $runs{$_} } @seq) {
    next unless $r->{clone} && $r->{exec} && $r->{end};
    $n++;
    my $s = $r->{reexec} // $r->{start};
    add('exec of berth to its re-exec (execveat entered)', $r->{start}, $r->{execveat});
    add('execveat of the read-only bind (kernel)', $r->{execveat}, $r->{reexec});
    add('re-exec\'d berth to clone3 (config, state, cgroup dirs)', $s, $r->{clone_in});
    add('clone3 itself (namespaces, copy of the mount table)', $r->{clone_in}, $r->{clone});
    add('clone3 to the first cgroup attach done (cgroup v1 lock)', $r->{clone}, $r->{attach0});
    add('first to last cgroup attach', $r->{attach0}, $r->{attach1});
    add('last attach to pivot_root done (init: mounts, rootfs)', $r->{attach1} // $r->{clone}, $r->{pivot});
    add('pivot_root to execve of /bin/true (init: the rest)', $r->{pivot}, $r->{exec});
    add('/bin/true runs', $r->{exec}, $r->{exit});
    add('its exit to berth\'s exit (reap, delete, cgroups)', $r->{exit}, $r->{end});
    add('total: exec of berth to its exit', $r->{start}, $r->{end});
}
printf "%-58s %8s %8s %8s\n", 'phase (µs)', 'median', 'min', 'max';
for my $k (@order) {
    my @v = sort { $a <=> $b } @{ $ph{$k} };
    my $m = @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
    printf "%-58s %8.0f %8.0f %8.0f\n", $k, $m, $v[0], $v[-1];
}
print "($n runs)\n";
