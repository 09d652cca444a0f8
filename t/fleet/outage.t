# Partitions that start or stop while the broker is away: frames flow again
# to a partition a viewer asked for during the outage, and to one that was
# cold all through it; a viewer that arrives while its partition is being
# stopped gets frames once the stop is done.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin, "$FindBin::Bin/../fault";

use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:16'], own_broker => 1;
use Reliability;
use Fleet;

my $slow = slow_factor();
my @F = make_frames(40, format => 'jpeg', size => '32x24');

# three keys on three partitions
my ($at, $ka, $kb, $kc) = keys_apart('cams', 3);
note "$ka on $at->{$ka}, $kb on $at->{$kb}, $kc on $at->{$kc}";

sub has {
    my ($v, $frame, $seconds) = @_;
    return until_true($seconds * $slow,
                      sub { grep { $_ eq $frame } parts_of(peek_viewer($v)) });
}

# one thread in the pool: a replay's lookup that waits for a hung broker
# holds it, and a partition's stop waits behind it
my $ng = nginx_start(workers => 1,
                     main => 'thread_pool default threads=1;',
                     http => stream_http(<<'_EOC_', 'kafka_stream_linger 0;'));
        location /cam {
            kafka_stream cams;
            kafka_stream_key $arg_id;
            kafka_stream_replay on;
        }
_EOC_

ok(until_true(20 * $slow, sub { workers_have('brokers_up', 1, 1) }),
   'connected');

my $va = open_viewer("/cam?id=$ka");
ok(consumed_is('cams', [$at->{$ka}], 5 * $slow), "$ka is read");
produce('cams', $F[1], key => $ka);
ok(has($va, $F[1], 5), 'frames flow');

# the broker dies; a viewer of a cold camera comes meanwhile
broker_control('kill 1');
ok(until_true(20 * $slow, sub { status_sum('brokers_up') == 0 }),
   'the worker notices the outage');

my $vb = open_viewer("/cam?id=$kb");
ok(consumed_is('cams', [sort { $a <=> $b } $at->{$ka}, $at->{$kb}],
               5 * $slow),
   "a viewer of $kb during the outage: its partition is started");

broker_control('start 1');
ok(until_true(30 * $slow, sub { workers_have('brokers_up', 1, 1) }),
   'the broker is back');

produce('cams', $F[2], key => $ka);
produce('cams', $F[3], key => $kb);
ok(has($va, $F[2], 15), "the viewer from before the outage gets new frames");
ok(has($vb, $F[3], 15),
   'so does the one whose partition started during the outage');

# a partition cold all through the outage
produce('cams', $F[4], key => $kc);
my ($first) = first_part("/cam?id=$kc", 10 * $slow);
ok(defined $first && $first eq $F[4],
   'a camera cold during the outage: its latest frame');

close_viewer($va);
close_viewer($vb);
ok(consumed_is('cams', [], 5 * $slow), 'nobody watches: nothing is read');


# --- a viewer while its partition is being stopped -------------------------

my $v = open_viewer("/cam?id=$ka");
ok(consumed_is('cams', [$at->{$ka}], 5 * $slow), "$ka is read again");

# the broker hangs; a replay's lookup waits for it in the only thread
broker_control('pause 1');
my $replay = open_viewer("/cam?id=$kb&since=-60");
sleep 0.5;

# the viewer leaves: the stop waits behind the lookup; one comes back
my $log = log_size($ng);
close_viewer($v);
ok(until_true(5 * $slow, sub {
       grep { /no longer consuming "cams" \[$at->{$ka}\]/ }
            log_lines($ng, $log) }),
   'the partition is being stopped');
my $again = open_viewer("/cam?id=$ka");
ok(until_true(5 * $slow, sub {
       grep { /"cams" \[$at->{$ka}\] is needed again while it stops/ }
            log_lines($ng, $log) }),
   'a viewer arrives while it stops');

broker_control('resume 1');
ok(until_true(20 * $slow, sub { "@{[consumed_all('cams')]}" =~ /\b$at->{$ka}\b/ }),
   'the partition is read again once stopped');
produce('cams', $F[5], key => $ka);
ok(has($again, $F[5], 15), 'and its viewer gets the new frames');

close_viewer($again);
close_viewer($replay);
ok(consumed_is('cams', [], 5 * $slow), 'nothing is read at the end');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing();
