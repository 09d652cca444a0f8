# The producer's messages: one per source frame, valid images of the right
# size, in order, with key, headers and CreateTime timestamps.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['dbtech:1', 'jpeg:1', 'nokey:1', 'lavfi:1',
                                 'spread:4'];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/src.mp4", duration => 2, fps => 10,
                       size => '160x120');
my $frames = ffprobe_frames($video);
cmp_ok($frames, '>', 10, "the test video has frames ($frames)");

my $brokers = kafka_brokers();

subtest 'PNG frames, one message per source frame' => sub {
    my $t0 = time * 1000;
    my $r = run_producer('-b', $brokers, '-k', 'cam-1', '--no-pace', $video);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    like($r->{err}, qr/\b$frames frames sent, 0 failed\b/,
         'the summary counts every frame');

    my @m = consume('dbtech');
    is(scalar @m, $frames, "the topic holds $frames messages");

    my @bad = grep { my $i = png_info($_->{value});
                     !$i || $i->{width} != 160 || $i->{height} != 120
                     || $i->{depth} != 8 || $i->{color} != 2 } @m;
    is(scalar @bad, 0, 'every value is a complete 160x120 RGB PNG');

    is_deeply([map { $_->{key} } @m], [('cam-1') x $frames],
              'every message has the key');
    is_deeply([map { header($_, 'frame') } @m], [0 .. $frames - 1],
              'frame headers count from 0 in order');

    my $h = headers_of($m[3]);
    is($h->{'content-type'}, 'image/png', 'content-type image/png');
    is($h->{width}, 160, 'width header');
    is($h->{height}, 120, 'height header');
    is($h->{'pts-ms'}, 300, 'pts-ms of the 4th frame of a 10 fps video');

    my @ts = map { $_->{timestamp} } @m;
    my @late = grep { $_ < $t0 - 1000 || $_ > time * 1000 + 1000 } @ts;
    is(scalar @late, 0, 'timestamps are the time of sending');
};

subtest 'JPEG frames' => sub {
    my $r = run_producer('-b', $brokers, '-t', 'jpeg', '-f', 'jpeg',
                         '-q', '5', '--no-pace', $video);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};

    my @m = consume('jpeg');
    is(scalar @m, $frames, "$frames messages");

    my @bad = grep { my $i = jpeg_info($_->{value});
                     !$i || $i->{width} != 160 || $i->{height} != 120 } @m;
    is(scalar @bad, 0, 'every value is a complete 160x120 JPEG');
    is(header($m[0], 'content-type'), 'image/jpeg', 'content-type');
    ok(!defined $m[0]{key}, 'no key without --key');
};

subtest 'without --key all frames go to one partition, in order' => sub {
    # a topic of four partitions: frames spread over them would lose
    # their order
    my $r = run_producer('-b', $brokers, '-t', 'spread', '--no-pace',
                         $video);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};

    my @m = consume('spread');
    is(scalar @m, $frames, "$frames messages");
    my %parts = map { $_->{partition} => 1 } @m;
    is(scalar keys %parts, 1, 'one partition');
    is_deeply([map { header($_, 'frame') } @m], [0 .. $frames - 1],
              'in order');
};

subtest 'KAFKA_BROKERS is the default broker list' => sub {
    local $ENV{KAFKA_BROKERS} = $brokers;
    my $r = run_producer('-t', 'nokey', '--no-pace', '-n', 3, $video);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    my @m = consume('nokey');
    is(scalar @m, 3, '-n 3 sends 3 frames');
};

subtest 'a libavdevice input: --input-format lavfi' => sub {
    my $r = run_producer('-b', $brokers, '-t', 'lavfi', '--no-pace',
                         '--input-format', 'lavfi',
                         'testsrc2=size=96x64:rate=10:duration=1');
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    my @m = consume('lavfi');
    is(scalar @m, 10, '10 frames');
    my $i = png_info($m[0]{value});
    is($i && "$i->{width}x$i->{height}", '96x64', 'of the size asked for');
};

done_testing;
