# A broker that hangs (SIGSTOP: its sockets stay open, it answers
# nothing) instead of dying, while 20 viewers watch:
#   - the viewers stay connected;
#   - each worker's event loop stays responsive, because nothing in it
#     waits on librdkafka: /status and a snapshot (the frame cached
#     before the hang) answer at once, again and again, and a replay,
#     whose Kafka lookups run in the thread pool, gets its 503 after
#     the module's 5 s while the status answers meanwhile;
#   - "nginx -s reload" during the hang does not hang: the old workers
#     exit within a bound (the one whose replay waits on the broker in a
#     thread of the pool when the reload comes stays until that lookup
#     gives up, the module's 5 s), and the viewers, reconnecting as the
#     page does, are served by the new workers;
#   - after SIGCONT the new workers' frames reach every viewer.
#
# Measured (2 cores shared with other test runs, 6 runs of this file):
# status and snapshots answered in 0.075 s at most during the hang; the
# old worker without the replay exited 0.13 to 0.17 s after "nginx -s
# reload" (0.52 s under make test SANITIZE=1), the one with it 5.00 to
# 5.04 s after; the frames reached every viewer 0.09 to 0.97 s after the
# broker was resumed.  The test allows $Answer s for an answer, $Exit1 s
# for the first old worker, $Exit s for the other and $Back s for the
# frames.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use List::Util qw(max min);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:1'], own_broker => 1;
use Reliability;

my $Viewers = 20;
my $slow = slow_factor();
my $Answer = 1 * $slow;     # seconds for a status or snapshot
my $Exit1 = 2 * $slow;      # seconds for the first old worker to exit
my $Exit = 8 * $slow;       # and for the one with the replay
my $Back = 5 * $slow;       # seconds for frames after the resume

my @F = make_frames(400, format => 'png', size => '64x48');
my %index;
@index{@F} = 0 .. $#F;

# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $always = 'kafka_stream_always_consume on;';
my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_', $always));
        location /stream { kafka_stream cams; kafka_stream_replay on; }
        location /snapshot { kafka_stream_snapshot cams; }
_EOC_

ok(until_true(20 * $slow, sub { workers_have('brokers_up')
                                && workers_have('partitions') }),
   'both workers are connected and consume the partition');

my $feed = start_feed('cams', \@F, fps => 10,
                      config => ['enable.idempotence=true']);
my $pool = start_viewers(n => $Viewers, uri => '/stream', frames => \@F,
                         reconnect => 1);

ok(until_true(10 * $slow, sub { watching() == $Viewers }),
   "$Viewers viewers watch");

sub sent { status_sum('parts_sent') }

my $s0 = sent();
ok(until_true(10 * $slow, sub { sent() >= $s0 + 10 * $Viewers }),
   'frames are flowing');

# a request, timed: (seconds, raw response)
sub timed {
    my ($uri) = @_;
    my $t0 = time;
    my $r = http_request("GET $uri HTTP/1.0\r\nHost: x\r\n\r\n",
                         timeout => 10 * $slow);
    return (time - $t0, $r // '');
}

my $paused_at = time;
broker_control('pause 1');

# a replay asks Kafka where to start: no answer comes
my $replay = start_capture("GET /stream?since=-2 HTTP/1.0\r\nHost: x\r\n\r\n");

# for 8 s: status and snapshots, one after the other, timed; nobody leaves
my (@slow_answers, @snap, $worst, $min_watching);
($worst, $min_watching) = (0, $Viewers);

until_true(10 * $slow, sub {
    my ($t, $r) = timed('/status');
    $worst = max($worst, $t);
    push @slow_answers, sprintf('status %.2f s', $t)
        if $t > $Answer || $r !~ m{^HTTP/1\.\d 200};
    $min_watching = min($min_watching, watching());

    ($t, $r) = timed('/snapshot');
    $worst = max($worst, $t);
    push @slow_answers, sprintf('snapshot %.2f s', $t)
        if $t > $Answer || $r !~ m{^HTTP/1\.\d 200};
    push @snap, $r =~ /\r\n\r\n(.*)\z/s ? $index{$1} // -1 : -1;

    return time > $paused_at + 8;
}, 0.1);

is("@slow_answers", '', "status and snapshots answer within $Answer s "
                        . 'while the broker hangs');
diag sprintf 'the slowest answer during the hang: %.3f s', $worst;
is($min_watching, $Viewers, 'all viewers stay connected');
ok(@snap >= 10, scalar(@snap) . ' snapshots');
my %snaps = map { ($_ => 1) } @snap;
ok(!grep({ $_ < 0 } @snap) && keys %snaps == 1,
   'each the same frame, the last one before the hang (' .
   join(',', sort keys %snaps) . ')');

until_true(10 * $slow, sub { -s $replay->{file}->filename });
my $r = parse_stream(stop_capture($replay));
is($r->{status}, 503, 'the replay gets 503: Kafka did not answer');

# the reload, while the broker still hangs, and while a replay's lookup
# waits on it in a thread of the pool: the old worker that has it stays
# until the lookup gives up (the module's 5 s), no longer
my @old = worker_pids($ng);
my $replay2 = start_capture("GET /stream?since=-2 HTTP/1.0\r\nHost: x"
                            . "\r\n\r\n");
ok(until_true(5 * $slow, sub { status_sum('viewers') > $Viewers }),
   'a replay waits for Kafka');
my $reload_at = time;
nginx_command($ng, 'reload');

my %exit;
until_true(15 * $slow, sub {
    for my $pid (grep { !$exit{$_} } @old) {
        $exit{$pid} = time - $reload_at if exited($pid);
    }
    return keys %exit == @old;
}, 0.005);

is(scalar keys %exit, 2, 'the old workers exit while the broker hangs');
my @exit_s = sort { $a <=> $b } map { $exit{$_} // 99 } @old;
cmp_ok($exit_s[0], '<=', $Exit1, "the one without the replay within "
                                 . "$Exit1 s of \"nginx -s reload\"");
cmp_ok($exit_s[1], '<=', $Exit, "the other within $Exit s");
diag sprintf 'the old workers exited %.2f and %.2f s after the reload',
             @exit_s;

until_true(10 * $slow, sub { -s $replay2->{file}->filename });
$r = parse_stream(stop_capture($replay2));
is($r->{status}, 503, 'that replay gets its 503 too');

my %old = map { ($_ => 1) } @old;
ok(until_true(10 * $slow, sub {
       my @now = worker_pids($ng);
       @now == 2 && !grep { $old{$_} } @now;
   }), 'two new workers');
ok(until_true(15 * $slow, sub { watching() == $Viewers }),
   'the viewers are back, on the new workers');

my ($t, $st) = timed('/status');
ok($t <= $Answer && $st =~ m{^HTTP/1\.\d 200},
   sprintf 'the new workers answer the status too (%.3f s)', $t);

my $resumed_at = time;
broker_control('resume 1');
note sprintf 'the broker hung %.1f s', $resumed_at - $paused_at;

my $f0 = status_sum('frames_in');
ok(until_true(15 * $slow, sub { workers_have('frames_in', 1)
                                && status_sum('frames_in') >= $f0 + 40 }),
   'after the resume the new workers take frames');

my $produced = stop_feed($feed);
my $rep = stop_viewers($pool);

my (@errors, @late, @delays);
for my $v (@$rep) {
    my @c = @{$v->{conns}};
    for my $k (0 .. $#c) {
        push @errors, "$v->{id}/$k: $c[$k]{error}" if $c[$k]{error};
        push @errors, "$v->{id}/$k: no closing boundary"
            if !$c[$k]{cut} && !$c[$k]{closing};
    }

    my ($first) = grep { $_->[0] > $resumed_at } @{$c[-1]{parts}};
    if (!$first) {
        push @late, "$v->{id}: none";
        next;
    }
    push @delays, $first->[0] - $resumed_at;
    push @late, sprintf('%d: %.2f s', $v->{id}, $delays[-1])
        if $delays[-1] > $Back;
}

is("@errors", '', 'no viewer connection failed; the old workers ended '
                  . 'theirs with the closing boundary');
is("@late", '', "every viewer has frames within $Back s of the resume");
diag sprintf 'the viewers got frames %.2f to %.2f s after the resume',
             min(@delays), max(@delays) if @delays;

nginx_done($ng);

done_testing;
