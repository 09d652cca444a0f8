# Pacing: frames leave at the source's frame rate (or --fps), measured on
# the CreateTime timestamps the producer gives each message; --no-pace
# sends them as soon as they are encoded.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['paced:1', 'fast:1', 'fps:1', 'loop:1',
                                 'drift:1'];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/src.mp4", duration => 2, fps => 10,
                       size => '160x120');
my $brokers = kafka_brokers();

sub gaps {
    my @ts = map { $_->{timestamp} } @_;
    return map { $ts[$_] - $ts[$_ - 1] } 1 .. $#ts;
}

my ($paced_span, $fast_span);

subtest '10 fps source: messages ~100 ms apart' => sub {
    my @m = send_and_consume($brokers, 'paced', 20, $video);
    my @g = gaps(@m);
    my $med = median(@g);
    ok($med >= 80 && $med <= 120, "median gap $med ms is within 80..120")
        or diag "@g";
    $paced_span = $m[-1]{timestamp} - $m[0]{timestamp};
    ok($paced_span >= 1700 && $paced_span <= 2300,
       "19 gaps span $paced_span ms, ~1900");
};

subtest '--no-pace sends much faster' => sub {
    my @m = send_and_consume($brokers, 'fast', 20, '--no-pace', $video);
    $fast_span = $m[-1]{timestamp} - $m[0]{timestamp};
    ok($fast_span < $paced_span / 4,
       "spread $fast_span ms, under a quarter of paced $paced_span ms");
};

subtest '--fps 20 paces at 50 ms' => sub {
    my @m = send_and_consume($brokers, 'fps', 20, '-r', '20', $video);
    my @g = gaps(@m);
    my $med = median(@g);
    ok($med >= 40 && $med <= 60, "median gap $med ms is within 40..60")
        or diag "@g";
    is(header($m[3], 'pts-ms'), 150, 'pts-ms follows --fps');
};

subtest 'looping continues the timeline' => sub {
    my @m = send_and_consume($brokers, 'loop', 40, '--loop', '2',
                             '-r', '40', $video);
    is_deeply([map { header($_, 'frame') } @m], [0 .. 39],
              'frame numbers go on across the loop');
    my @g = gaps(@m);
    my @long = grep { $_ > 200 } @g;
    is(scalar @long, 0, 'no pause or burst at the loop point')
        or diag "@g";
    is(header($m[20], 'pts-ms'), 500, 'pts-ms goes on after the loop');
};

subtest 'no drift: 300 frames at 50 fps span 5.98 s' => sub {
    # sleeping a frame interval after each send would add each frame's
    # own work to the span; absolute deadlines do not
    my $long = make_video("$dir/50fps.mp4", duration => 6, fps => 50,
                          size => '64x48');
    my @m = send_and_consume($brokers, 'drift', 300, $long);
    my $span = $m[-1]{timestamp} - $m[0]{timestamp};
    ok(abs($span - 5980) <= 60, "span $span ms is 5980 +- 60");
};

done_testing;
