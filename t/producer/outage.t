# A broker outage mid-stream: librdkafka retries what is queued, the
# idempotent producer neither duplicates nor reorders frames, and nothing
# is lost when the broker is back within message.timeout.ms.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['outage:1', 'outage2:1'];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/src.mp4", duration => 6, fps => 10,
                       size => '160x120');

my $h = start_producer('-b', kafka_brokers(), '-t', 'outage', '--progress',
                       $video);

sub sent {
    $h->{run}->pump_nb;
    my @n = $h->{err} =~ /(\d+) frames sent/g;
    return @n ? $n[-1] : 0;
}

ok(poll_until(15, sub { sent() >= 10 }), 'frames are being delivered');

broker_control('down -1');
my $at_down = sent();

# the source plays on with the broker away, for two progress lines (one a
# second when stderr is not a terminal)
my $lines = () = $h->{err} =~ /frames sent/g;
ok(poll_until(10, sub { sent(); (() = $h->{err} =~ /frames sent/g) >= $lines + 2 }),
   'the producer runs on during the outage');
my $during = sent();
cmp_ok($during - $at_down, '<=', 3,
       "deliveries stop during the outage ($at_down, then $during)");
broker_control('up -1');

my $r = finish_producer($h);
is($r->{rc}, 0, 'exit 0: everything was delivered in the end')
    or diag $r->{err};
like($r->{err}, qr/\b60 frames sent, 0 failed\b/, 'all 60 frames sent');

my @m = consume('outage');
is(scalar @m, 60, '60 messages, no duplicates');
is_deeply([map { header($_, 'frame') } @m], [0 .. 59],
          'in order, without a gap');

subtest 'an outage longer than message.timeout.ms' => sub {
    my $h = start_producer('-b', kafka_brokers(), '-t', 'outage2',
                           '-X', 'message.timeout.ms=1500', '--progress',
                           $video);
    my $sent = sub {
        $h->{run}->pump_nb;
        my @n = $h->{err} =~ /(\d+) frames sent/g;
        return @n ? $n[-1] : 0;
    };

    ok(poll_until(15, sub { $sent->() >= 5 }), 'frames are being delivered');
    broker_control('down -1');
    ok(poll_until(10, sub { $h->{run}->pump_nb;
                            $h->{err} =~ /cannot deliver frame \d+/ }),
       'failed frames are reported while the broker is away');
    broker_control('up -1');
    ok(poll_until(10, sub { $h->{run}->pump_nb;
                            $h->{err} =~ /delivering to topic 'outage2' again/ }),
       'and the return of the broker');

    my $r = finish_producer($h);
    is($r->{rc}, 1, 'exit 1: some frames were lost');
    my ($ok, $failed) = $r->{err} =~ /(\d+) frames sent, (\d+) failed/;
    ok($failed > 0, "$failed frames counted as failed");
    is($ok + $failed, 60, 'every frame counted once, as sent or failed');

    my @m = consume('outage2');
    is(scalar @m, $ok, "the $ok sent frames are in the topic");
    my @f = map { header($_, 'frame') } @m;
    my @back = grep { $f[$_] <= $f[$_ - 1] } 1 .. $#f;
    is(scalar @back, 0, 'in order, without duplicates');
};

done_testing;
