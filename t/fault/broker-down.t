# The broker is killed (kill -9) while 50 viewers watch, and started
# again on its data: nobody is disconnected, frames flow again within a
# bound of the broker serving again, in order, each once; the error log
# says so in a bounded number of lines, not one per poll; and the frames
# stored before the outage survived it: a replay (?since=, ?until=) across
# it, asked for after the restart, finds every one of them.
#
# Measured (2 cores shared with other test runs, 10 runs of this file):
# "start" of the killed broker took 6.4 to 13.4 s (a JVM start and the
# log recovery of an unclean shutdown); the 50 viewers had their first
# new frame from 0.80 s before its "ok" (the launcher sees the broker
# serve a moment after it does) to 0.64 s after.  The test allows $Back
# s after the "ok".

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use List::Util qw(max min);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:1'], own_broker => 1;
use Reliability;

my $Viewers = 50;
my $Outage = 5;             # seconds the broker stays dead
my $Before = 3;             # seconds of frames the replay asks for
my $slow = slow_factor();
my $Back = 3 * $slow;       # seconds after "start" answers

my @F = make_frames(400, format => 'png', size => '64x48');

# no kafka_stream_option: the module's defaults must recover quickly
# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $always = 'kafka_stream_always_consume on;';
my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_', $always));
        location /stream { kafka_stream cams; }
        location /replay { kafka_stream cams; kafka_stream_replay on; }
_EOC_

ok(until_true(20 * $slow, sub { workers_have('brokers_up')
                                && workers_have('partitions') }),
   'both workers are connected and consume the partition');

# idempotent: a batch the broker wrote but could not acknowledge before
# it died is not written twice when the feed sends it again
my $feed = start_feed('cams', \@F, fps => 10,
                      config => ['enable.idempotence=true']);
my $pool = start_viewers(n => $Viewers, uri => '/stream', frames => \@F);

ok(until_true(10 * $slow, sub { watching() == $Viewers }),
   "$Viewers viewers watch");

sub sent { status_sum('parts_sent') }

# each worker's frames, by pid
sub frames_in {
    my $st = status() or return {};
    return { map { ($_->{pid} => $_->{frames_in}) } @{$st->{workers}} };
}

# frames reach the viewers for a while before the outage: the replay's
# seconds, and more
my $sent0 = sent();
ok(until_true(20 * $slow, sub { sent() >= $sent0 + 10 * ($Before + 1)
                                             * $Viewers }),
   'frames are flowing');

my $log_from = log_size($ng);
my $down_at = time;
broker_control('kill 1');

ok(until_true(15 * $slow, sub { status_sum('brokers_up') == 0 }),
   'both workers notice that no broker is up');
my $at_down = frames_in();

# the viewers stay through the outage
my $min_watching = $Viewers;
until_true($Outage + 1, sub {
    my $w = watching();
    $min_watching = min($min_watching, $w) if $w >= 0;
    return time > $down_at + $Outage;
}, 0.2);
is($min_watching, $Viewers, 'all viewers stay connected during the outage');

my $start_at = time;
broker_control('start 1');
my $up_at = time;
note sprintf 'the broker was dead %.1f s; "start" took %.1f s',
             $up_at - $down_at, $up_at - $start_at;

# every worker takes frames again (maybe before "start" answered: the
# launcher sees the broker serve a moment after it does)
my %back;
until_true(15 * $slow, sub {
    my $now = frames_in();
    for my $pid (keys %$at_down) {
        $back{$pid} //= time - $up_at
            if ($now->{$pid} // 0) > $at_down->{$pid};
    }
    return keys %back == keys %$at_down;
}, 0.01);
is(scalar keys %back, 2, 'both workers take frames again');

# then 20 more frames in each (produced live, after the backlog of the
# outage that came at once): every viewer has had some of them
my $mid = frames_in();
ok(until_true(10 * $slow, sub {
       my $now = frames_in();
       return !grep { ($now->{$_} // 0) < $mid->{$_} + 20 } keys %$mid;
   }), 'and 20 frames more');
ok(until_true(5 * $slow, sub {
       my %pids = map { /(\d+)#\d+: kafka stream: \d+ broker\(s\) connected/
                        ? ($1 => 1) : () } log_lines($ng, $log_from);
       return keys %pids == 2;
   }), 'both workers log the recovery');

my $produced = stop_feed($feed);
my $rep = stop_viewers($pool);
my @log = log_lines($ng, $log_from);

ok($produced > 10 * ($Outage + 2), "the feed produced $produced frames");

my (@lost, @late, @unordered, @before, @delays, $last_before);
$last_before = -1;

for my $v (@$rep) {
    my @c = @{$v->{conns}};
    push @lost, $v->{id} if @c != 1 || $c[0]{error} || !$c[0]{cut}
                            || ($c[0]{status} // 0) != 200;
    my @p = @{$c[0]{parts}};
    my @old = grep { $_->[0] < $down_at } @p;
    push @before, $v->{id} if !@old;
    $last_before = max($last_before, map { $_->[1] } @old);

    # frames the feed had queued may come before "start" answers
    my ($first_after) = grep { $_->[0] > $down_at + $Outage } @p;
    if (!$first_after) {
        push @late, "$v->{id}: none";
    } else {
        my $d = $first_after->[0] - $up_at;
        push @delays, $d;
        push @late, sprintf('%d: %.2f s', $v->{id}, $d) if $d > $Back;
    }

    my @i = map { $_->[1] } @p;
    for my $k (1 .. $#i) {
        if ($i[$k] < 0 || $i[$k] <= $i[$k - 1]) {
            push @unordered, "$v->{id}: $i[$k - 1] then $i[$k]";
            last;
        }
    }
}

is("@lost", '', 'no viewer was disconnected or failed');
is("@before", '', 'every viewer had frames before the outage');
is("@late", '', "every viewer has frames again within $Back s of the "
                . 'broker serving again');
diag sprintf 'the viewers got their first new frame %.2f to %.2f s after '
             . '"start" answered (before it: the broker served earlier)',
             min(@delays), max(@delays) if @delays;
is("@unordered", '', 'frames arrive in the order produced, each once');

my @warn = grep { /\[(?:warn|error)\]/ } @log;
my $outage_s = sprintf '%.1f', $up_at - $down_at;
note scalar(@warn) . " warnings and errors in a $outage_s s outage:\n"
     . join '', @warn[0 .. min($#warn, 40)];
cmp_ok(scalar @warn, '<=', 2 * 12 * (1 + int(($up_at - $down_at) / 10)),
       'a bounded number of warnings (the rate limit), not one per poll');
ok((grep { /no broker connected|brokers are down/ } @log) >= 1,
   'the outage is logged');

# the frames of the last $Before s before the kill, from the disk of the
# broker that was killed: every one, in order, up to the last one the
# viewers saw
my $since = sprintf '%.3f', $down_at - $Before;
my $until = sprintf '%.3f', $down_at;
my $raw = http_request("GET /replay?since=$since&until=$until&speed=8 "
                       . "HTTP/1.0\r\nHost: x\r\n\r\n", timeout => 15 * $slow,
                       until => qr/--kafka-stream-frame--/);
my $r = parse_stream($raw);
my %index;
@index{@F} = 0 .. $#F;
my @got = map { $index{$_->{body}} // -1 } @{$r->{parts}};

is($r->{status}, 200, 'the replay across the outage answers 200');
ok($r->{closing}, 'and ends with the closing boundary at ?until=');
ok(@got >= 10 * $Before * 0.7, 'with about the frames of ' . "$Before s ("
                                . scalar(@got) . ')');
is(join(',', grep { $got[$_] != $got[0] + $_ } 0 .. $#got), '',
   'consecutive frames, none missing, none twice')
    or diag("@got");
ok($got[-1] >= $last_before && $got[-1] <= $last_before + 2,
   "up to the last frame viewers saw before the kill ($last_before; "
   . "the replay's last: $got[-1])");

nginx_done($ng);

done_testing;
