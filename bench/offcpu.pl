#!/usr/bin/perl
# Off-CPU time of berth's processes from `perf script` of sched:sched_switch
# with call graphs: each time a berth task is switched out in D state, the
# time until it is switched back in, summed by why (the blocking kernel
# function and the syscall it was in).
use strict;
use warnings;
my $runs = shift // 1;
my (%out, %why, %sum, %cnt);
my ($cur, @stack);
sub flush {
    return unless $cur;
    my ($t, $pid, $state) = @$cur;
    $cur = undef;
    return unless $state eq 'D';
    my @f = map { my $x = $_; $x =~ s/^\s*[0-9a-f]+\s+//; $x =~ s/\+0x.*//s; $x =~ s/\s+$//; $x } @stack;
    my $block;
    for my $pat (qr/synchronize_rcu|rcu_barrier/, qr/percpu_down|rwsem|mutex_lock/, qr/io_schedule|flush_work|wait_for_completion|schedule_timeout/) {
        ($block) = grep { /$pat/ } @f;
        last if $block;
    }
    my $sys;
    for my $i (0 .. $#f) {
        if ($f[$i] =~ /^(x64_sys_call|do_syscall_64)$/) { $sys = $f[$i - 1] if $i > 0; last }
    }
    $sys //= (grep { /__x64_sys_|__do_sys_|exc_page_fault|ret_from_fork/ } @f)[0];
    $out{$pid} = [$t, ($sys // '?') . ' / ' . ($block // 'other')];
}
while (<>) {
    if (/^\s*(\S+)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+sched:sched_switch:\s+(.*)$/) {
        flush();
        my ($comm, $pid, $t, $rest) = ($1, $2, $3, $4);
        my ($state) = $rest =~ /prev_state=(\S+)/;
        my ($next) = $rest =~ /next_pid=(\d+)/;
        if (defined $next && (my $o = delete $out{$next})) {
            $sum{ $o->[1] } += ($t - $o->[0]) * 1e6;
            $cnt{ $o->[1] }++;
        }
        @stack = ();
        $cur = $comm eq 'berth' ? [$t, $pid, $state // ''] : undef;
        next;
    }
    push @stack, $_ if $cur && /\S/;
}
flush();
printf "%-72s %9s %7s\n", 'blocked in (syscall / kernel function)', 'µs/run', 'times';
for my $k (sort { $sum{$b} <=> $sum{$a} } keys %sum) {
    printf "%-72s %9.0f %7d\n", $k, $sum{$k} / $runs, $cnt{$k};
}
