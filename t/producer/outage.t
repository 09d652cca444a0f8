# A broker outage mid-stream: librdkafka retries what is queued, the
# idempotent producer neither duplicates nor reorders frames, and nothing
# is lost when the broker is back within message.timeout.ms.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['outage:1'];
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

done_testing;
