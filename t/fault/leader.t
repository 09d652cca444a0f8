# A 3-broker cluster with a topic of 3 partitions, 3 replicas: the
# partitions' leaders move to another broker mid-stream, then the old
# leader goes down.  The frames of every partition keep coming, in order,
# to every viewer, and nobody is disconnected.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use List::Util qw(max);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:3:3'], brokers => 3;
use Reliability;

my $slow = slow_factor();
my $Per = 300;                  # frames per partition

my @F = make_frames(3 * $Per, format => 'png', size => '64x48');

# every partition starts on broker 1
broker_control("leader cams $_ 1") for 0 .. 2;

# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $always = 'kafka_stream_always_consume on;';
my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_', $always));
        location /all { kafka_stream cams; }
        location /one { kafka_stream cams; kafka_stream_partition 1; }
_EOC_

ok(until_true(20 * $slow, sub { workers_have('partitions', 3) }),
   'both workers consume the 3 partitions');

# partition p carries frames p * $Per ..
my @feeds = map {
    start_feed('cams', [@F[$_ * $Per .. ($_ + 1) * $Per - 1]], fps => 8,
               partition => $_)
} 0 .. 2;

my $all = start_viewers(n => 10, uri => '/all', frames => \@F);
my $one = start_viewers(n => 5, uri => '/one', frames => \@F);

sub sent { status_sum('parts_sent') }

my $s0 = sent();
ok(until_true(10 * $slow, sub { sent() > $s0 + 15 * 10 }), 'frames flow');

my @moves;
for my $step (['leader', 2], ['down', 1], ['leader', 3], ['up', 1]) {
    my ($what, $id) = @$step;

    if ($what eq 'leader') {
        broker_control("leader cams $_ $id") for 0 .. 2;
    } else {
        broker_control("$what $id");
    }

    push @moves, ["$what $id", time];
    sleep 3;
}

sleep 1;
my @produced = map { stop_feed($_) } @feeds;
my $rep_all = stop_viewers($all);
my $rep_one = stop_viewers($one);

ok(!grep({ $_ < 20 } @produced), "the feeds produced (@produced)");

sub check {
    my ($name, $rep, @parts) = @_;
    my (@lost, @gaps, @unordered);
    my $worst = 0;

    for my $v (@$rep) {
        my @c = @{$v->{conns}};
        if (@c != 1 || $c[0]{error} || !$c[0]{cut}) {
            push @lost, $v->{id};
            diag("$name: viewer $v->{id}: " . scalar(@c) . ' connection(s), '
                 . ($c[0]{error} // 'no error') . ', '
                 . ($c[0]{cut} ? 'cut by the test' : 'not cut by the test')
                 . ', ' . scalar(@{$c[0]{parts} // []}) . ' parts');
        }
        my @p = @{$c[0]{parts}};

        for my $part (@parts) {
            my @mine = grep { int($_->[1] / $Per) == $part && $_->[1] >= 0 }
                       @p;

            # frames of this partition after every change
            for my $m (@moves) {
                my ($first) = grep { $_->[0] > $m->[1] } @mine;
                my $d = $first ? $first->[0] - $m->[1] : 99;
                $worst = max($worst, $d);
                push @gaps, sprintf('%d/p%d after "%s": %.1f s',
                                    $v->{id}, $part, $m->[0], $d)
                    if $d > 2 * $slow;
            }

            my @i = map { $_->[1] } @mine;
            for my $k (1 .. $#i) {
                if ($i[$k] <= $i[$k - 1]) {
                    push @unordered, "$v->{id}: $i[$k - 1] then $i[$k]";
                    last;
                }
            }
        }

        my @alien = grep { my $x = $_->[1];
                           $x < 0 || !grep { int($x / $Per) == $_ } @parts } @p;
        push @unordered, "$v->{id}: " . scalar(@alien) . " foreign frames"
            if @alien;
    }

    is("@lost", '', "$name: no viewer disconnected");
    is("@gaps", '', "$name: every partition's frames continue within 2 s "
                    . "of each change");
    note sprintf "$name: longest wait for a partition's next frame after a "
                 . "change: %.2f s", $worst;
    is("@unordered", '', "$name: each partition's frames in order, once");
}

check('all partitions', $rep_all, 0, 1, 2);
check('partition 1', $rep_one, 1);

my @log = log_lines($ng, 0);
is(join('', grep { /\[(?:alert|crit|emerg)\]/ } @log), '',
   'no alert, crit or emerg');

ok(nginx_stop($ng), 'nginx stops');
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing;
