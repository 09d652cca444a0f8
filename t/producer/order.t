# Frames keep their order with parallel encoders: each frame of the source
# has its own brightness, so the image content itself shows the order.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['j2:1', 'j2jpeg:1'];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = "$dir/gray.mkv";

# frame N is uniformly grey with luma 16 + 6 N; ffv1 keeps it exact
system('ffmpeg', '-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i',
       "nullsrc=s=160x120:r=10:d=3,format=yuv420p,"
       . "geq=lum='16+N*6':cb=128:cr=128", '-c:v', 'ffv1', $video) == 0
    or BAIL_OUT('ffmpeg cannot make the test video');

# the red value of the first pixel of every frame as ffmpeg decodes it
my $raw = `ffmpeg -v error -nostdin -i '$video' -f rawvideo -pix_fmt rgb24 -`;
my $size = 160 * 120 * 3;
my @expected = map { ord substr($raw, $_ * $size, 1) }
               0 .. length($raw) / $size - 1;
is(scalar @expected, 30, 'ffmpeg decodes 30 frames');

my $r = run_producer('-b', kafka_brokers(), '-t', 'j2', '-j', '2',
                     '--no-pace', $video);
is($r->{rc}, 0, 'exit 0 with -j 2') or diag $r->{err};

my @m = consume('j2');
is(scalar @m, 30, '30 messages');
is_deeply([map { header($_, 'frame') } @m], [0 .. 29],
          'frame headers in order');

my @red = map { my $p = png_first_pixel($_->{value}); $p ? $p->[0] : -1 } @m;
my @off = grep { abs($red[$_] - $expected[$_]) > 2 } 0 .. $#expected;
is(scalar @off, 0, 'message N shows source frame N')
    or diag "got @red\nexpected @expected";

my @down = grep { $red[$_] <= $red[$_ - 1] } 1 .. $#red;
is(scalar @down, 0, 'brightness rises from message to message');

subtest 'JPEG with -j 2' => sub {
    my $r = run_producer('-b', kafka_brokers(), '-t', 'j2jpeg', '-j', '2',
                         '-f', 'jpeg', '--no-pace', $video);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};

    # decode each JPEG back with ffmpeg and compare its brightness
    my @m = consume('j2jpeg');
    is(scalar @m, 30, '30 messages');
    my @y;
    for my $i (0 .. $#m) {
        my $path = "$dir/f$i.jpg";
        open my $fh, '>:raw', $path or die "$path: $!";
        print $fh $m[$i]{value};
        close $fh;
        my $px = `ffmpeg -v error -nostdin -i '$path' -f rawvideo -pix_fmt gray -`;
        push @y, ord substr($px, 0, 1);
    }
    my @down = grep { $y[$_] <= $y[$_ - 1] } 1 .. $#y;
    is(scalar @down, 0, 'brightness rises from message to message')
        or diag "@y";
};

done_testing;
