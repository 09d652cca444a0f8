# The broker killed (SIGKILL) mid-run and started again on its data:
# librdkafka retries what is queued or was in flight, the idempotent
# producer neither duplicates nor reorders frames, and nothing is lost
# when the broker is back within message.timeout.ms.  A consumer counts
# the frames by their "frame" header.  The file's own broker.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['outage:1', 'inflight:1', 'outage2:1'],
                      own_broker => 1;
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/src.mp4", duration => 6, fps => 10,
                       size => '160x120');

# frames delivered so far, by the producer's progress lines
sub sent {
    my ($h) = @_;
    $h->{run}->pump_nb;
    my @n = $h->{err} =~ /(\d+) frames sent/g;
    return @n ? $n[-1] : 0;
}

# the frame numbers in a topic: each once, in order, none missing
sub frames_in {
    my ($topic) = @_;
    return map { header($_, 'frame') } consume($topic);
}

# a Kafka broker (a JVM) takes seconds to start again after kill -9: the
# frames wait in the producer for longer than the default 10 s allow
my @patient = ('-X', 'message.timeout.ms=60000');

my $h = start_producer('-b', kafka_brokers(), '-t', 'outage', '--progress',
                       @patient, $video);

ok(poll_until(15, sub { sent($h) >= 10 }), 'frames are being delivered');

broker_control('kill 1');
my $at_down = sent($h);

# the source plays on with the broker away, for two progress lines (one a
# second when stderr is not a terminal)
my $lines = () = $h->{err} =~ /frames sent/g;
ok(poll_until(10, sub { sent($h);
                        (() = $h->{err} =~ /frames sent/g) >= $lines + 2 }),
   'the producer runs on during the outage');
my $during = sent($h);
cmp_ok($during - $at_down, '<=', 3,
       "deliveries stop during the outage ($at_down, then $during)");
broker_control('start 1');

my $r = finish_producer($h);
is($r->{rc}, 0, 'exit 0: everything was delivered in the end')
    or diag $r->{err};
like($r->{err}, qr/\b60 frames sent, 0 failed\b/, 'all 60 frames sent');
is_deeply([frames_in('outage')], [0 .. 59],
          'the topic holds each frame once, in order, without a gap');

subtest 'killed with frames in flight' => sub {
    # as fast as the frames encode: requests are on their way when the
    # broker dies, some stored without their answer, and their retries
    # would store them twice (without idempotence, 2 runs in 4 had
    # duplicates here)
    my $h = start_producer('-b', kafka_brokers(), '-t', 'inflight',
                           '--progress', '--no-pace', '--loop', '-n', '3000',
                           @patient, $video);
    ok(poll_until(15, sub { sent($h) >= 100 }), 'frames are being delivered');
    broker_control('kill 1');
    my $at_kill = sent($h);
    broker_control('start 1');

    my $r = finish_producer($h);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    like($r->{err}, qr/\b3000 frames sent, 0 failed\b/,
         'all 3000 frames sent');
    cmp_ok($at_kill, '<', 3000, "killed mid-run ($at_kill sent)");
    is_deeply([frames_in('inflight')], [0 .. 2999],
              'each frame once, in order, without a gap');
};

subtest 'an outage longer than message.timeout.ms' => sub {
    my $h = start_producer('-b', kafka_brokers(), '-t', 'outage2',
                           '-X', 'message.timeout.ms=1500', '--progress',
                           '--loop', $video);

    ok(poll_until(15, sub { sent($h) >= 5 }), 'frames are being delivered');
    broker_control('kill 1');
    ok(poll_until(10, sub { $h->{run}->pump_nb;
                            $h->{err} =~ /cannot deliver frame \d+/ }),
       'failed frames are reported while the broker is away');
    broker_control('start 1');
    ok(poll_until(15, sub { $h->{run}->pump_nb;
                            $h->{err} =~ /delivering to topic 'outage2' again/ }),
       'and the return of the broker');

    # the source loops: stopped once frames flow again
    my $back = sent($h);
    ok(poll_until(10, sub { sent($h) >= $back + 5 }), 'frames flow again');
    $h->{run}->signal('INT');

    my $r = finish_producer($h);
    is($r->{rc}, 1, 'exit 1: some frames were lost');
    my ($ok, $failed) = $r->{err} =~ /(\d+) frames sent, (\d+) failed/;
    ok($failed > 0, "$failed frames counted as failed");

    my @f = frames_in('outage2');
    is(scalar @f, $ok, "the $ok sent frames are in the topic");
    my @back = grep { $f[$_] <= $f[$_ - 1] } 1 .. $#f;
    is(scalar @back, 0, 'in order, without duplicates');
    cmp_ok($f[-1], '<', $ok + $failed,
           'every frame counted once, as sent or failed');
};

# librdkafka 2.0.2 raises a fatal error when an idempotent producer finds
# its sequence numbers rewound (seen after the whole cluster was killed in
# the soak); KSP_TEST_FATAL_AFTER raises the same error on cue.  With the
# broker hung, the frames stay queued: the producer must give them up and
# exit at once, not wait out message.timeout.ms (here longer than the
# test's own 60 s limit on a producer run), so that systemd can start a
# fresh one.
subtest 'a fatal error ends the run at once' => sub {
    broker_control('pause 1');
    local $ENV{KSP_TEST_FATAL_AFTER} = 5;
    my $h = start_producer('-b', kafka_brokers(), '-t', 'outage2',
                           '-X', 'message.timeout.ms=300000', '--loop',
                           $video);
    my $r = eval { finish_producer($h) };
    broker_control('resume 1');

    ok($r, 'the producer exited by itself') or diag($@);
    is($r->{rc}, 1, 'exit 1');
    like($r->{err}, qr/fatal Kafka producer error: OUT_OF_ORDER_SEQUENCE_NUMBER/,
         'the fatal error, said');
    like($r->{err}, qr/0 frames sent, \d+ failed/,
         'the queued frames counted as failed');
};

done_testing;
