# A worker reads a partition only while a viewer needs it: a keyed
# viewer's partition (where the producer's partitioner put the key), an
# unfiltered viewer's every partition, a fixed kafka_stream_partition.
# The last viewer gone, the partition lingers, then stops; a viewer that
# comes back during the linger finds it still read, with the latest frame;
# viewers that come and go faster than a stop takes always get frames.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin, "$FindBin::Bin/../fault";

use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:16'];
use Reliability;
use Fleet;

my $slow = slow_factor();
my @F = make_frames(60, format => 'jpeg', size => '32x24');
my %index;
@index{@F} = (0 .. $#F);

# two keys on two partitions, neither of them partition 3
my $at = key_partitions('cams', [map { "cam$_" } 1 .. 16]);
my ($ka) = grep { $at->{$_} != 3 } sort keys %$at;
my ($kb) = grep { $at->{$_} != 3 && $at->{$_} != $at->{$ka} } sort keys %$at;
my ($pa, $pb) = ($at->{$ka}, $at->{$kb});
note "$ka is on partition $pa, $kb on $pb";

sub sorted { join ' ', sort { $a <=> $b } @_ }

my $locations = <<'_EOC_';
        location /cam { kafka_stream cams; kafka_stream_key $arg_id; }
        location /all { kafka_stream cams; }
        location /three { kafka_stream cams; kafka_stream_partition 3; }
_EOC_

my $ng = nginx_start(workers => 1,
                     http => stream_http($locations,
                                         'kafka_stream_linger 300ms;'));
my ($pid) = worker_pids($ng);

ok(until_true(20 * $slow, sub { my $st = status();
                                $st && $st->{workers}[0]{brokers_up} }),
   'the worker is connected');
is(sorted(consumed_all('cams')), '', 'nobody watches: it reads nothing');
is(status()->{workers}[0]{partitions}, 0, '"partitions" says 0');

# a keyed viewer: its key's partition
my $va = open_viewer("/cam?id=$ka");
ok(consumed_is('cams', [$pa], 5 * $slow),
   "a viewer of $ka: partition $pa is read, and only that one");
produce('cams', $F[1], key => $ka);

# a second key elsewhere
my $vb = open_viewer("/cam?id=$kb");
ok(consumed_is('cams', [sort { $a <=> $b } $pa, $pb], 5 * $slow),
   "a viewer of $kb: partition $pb too");
produce('cams', $F[2], key => $kb);

sub has {
    my ($v, $i) = @_;
    return until_true(5 * $slow,
                      sub { grep { $_ eq $F[$i] } parts_of(peek_viewer($v)) });
}

ok(has($va, 1) && has($vb, 2), 'each viewer gets its frame');

# the first viewer leaves: its partition stops after the linger
my $log = log_size($ng);
# (the frames key_partitions() sent are not in @F: they are left out)
my @got_a = grep { $_ >= 0 } map { $index{$_} // -1 } parts_of(close_viewer($va));
is("@got_a", '1', "the viewer of $ka got its frame");
ok(consumed_is('cams', [$pb], 5 * $slow),
   "after the linger only partition $pb is read");
ok((grep { /no longer consuming "cams" \[$pa\]/ } log_lines($ng, $log)),
   'the stop is logged');

# an unfiltered viewer: every partition, then back to one
my $vall = open_viewer('/all');
ok(consumed_is('cams', [0 .. 15], 5 * $slow),
   'an unfiltered viewer: all 16 partitions');
is(status()->{workers}[0]{partitions}, 16, '"partitions" says 16');
produce('cams', $F[3], key => $ka);
ok(until_true(5 * $slow, sub { grep { $_ eq $F[3] } parts_of(peek_viewer($vall)) }),
   'the unfiltered viewer gets a frame of any key');
close_viewer($vall);
ok(consumed_is('cams', [$pb], 5 * $slow),
   'it left: only the keyed viewer\'s partition again');

# a fixed partition
my $v3 = open_viewer('/three');
ok(consumed_is('cams', [sort { $a <=> $b } 3, $pb], 5 * $slow),
   'kafka_stream_partition 3: partition 3');
close_viewer($v3);

my @got_b = grep { $_ >= 0 } map { $index{$_} // -1 } parts_of(close_viewer($vb));
is("@got_b", '2', "the viewer of $kb got its frame");
ok(consumed_is('cams', [], 5 * $slow), 'nobody left: nothing is read');

my $st = status();
cmp_ok($st->{workers}[0]{bytes_in}, '>=', length($F[1]) + length($F[2]),
       'bytes_in counts what the worker read');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');


# --- a viewer during the linger ---------------------------------------

my $linger = 3 * $slow;
$ng = nginx_start(workers => 1,
                  http => stream_http($locations,
                                      "kafka_stream_linger ${linger}s;"));

ok(until_true(20 * $slow, sub { my $s = status();
                                $s && $s->{workers}[0]{brokers_up} }),
   'connected again');

produce('cams', $F[10], key => $ka);
my ($first) = first_part("/cam?id=$ka", 5 * $slow);
is($index{$first // ''} // -1, 10, 'a cold viewer gets the latest frame');

$log = log_size($ng);
my $left = time;
ok(until_true($slow, sub { "@{[consumed_all('cams')]}" eq "$pa" }),
   'the partition lingers after the viewer left');

($first) = first_part("/cam?id=$ka", 5 * $slow);
is($index{$first // ''} // -1, 10,
   'a viewer within the linger gets the latest frame at once');
cmp_ok(time - $left, '<', $linger, 'it came within the linger');
ok(!(grep { /no longer consuming/ } log_lines($ng, $log)),
   'the partition was not stopped meanwhile');
ok(consumed_is('cams', [], 2 * $linger), 'then it stops');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');


# --- viewers that come and go faster than a partition stops --------------

# no linger: each viewer's partition stops at the next tick, so that the
# next viewer finds it hot, stopping, or stopped
$ng = nginx_start(workers => 2,
                  http => stream_http($locations, 'kafka_stream_linger 0;'));

ok(until_true(20 * $slow, sub { workers_have('brokers_up') }),
   'both workers connected');

my $feed = start_feed('cams', \@F, fps => 25, key => $ka);
my (@slow_first, @none);

for my $i (1 .. 40) {
    my ($part, $after) = first_part("/cam?id=$ka", 3 * $slow);
    if (!defined $part) {
        push @none, $i;
    } else {
        push @slow_first, sprintf('%d: %.0f ms', $i, $after * 1000)
            if $after > $slow;
    }
    # now at once, now after a tick or two
    sleep(($i % 4) * 0.05);
}

stop_feed($feed);
is("@none", '', 'every viewer got a frame');
is("@slow_first", '', 'each within a second');

my @restarts = grep { /consuming "cams" \[$pa\]/ } log_lines($ng, 0);
cmp_ok(scalar @restarts, '>', 2, 'the partition started again and again ('
       . scalar(@restarts) . ' starts)');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing();
