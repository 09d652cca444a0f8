# --size, --loop, --max-frames and several inputs.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['s1:1', 's2:1', 's3:1', 's4:1', 'l2:1',
                                 'n5:1', 'two:1'];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/src.mp4", duration => 1, fps => 10,
                       size => '320x240');
my $brokers = kafka_brokers();

sub sizes {
    my ($topic) = @_;
    my %seen;
    for my $m (consume($topic)) {
        my $i = png_info($m->{value});
        my $s = $i ? "$i->{width}x$i->{height}" : 'invalid';
        $seen{$s}++;
        $s = header($m, 'width') . 'x' . header($m, 'height');
        $seen{"header $s"}++;
    }
    return join ' ', sort keys %seen;
}

for my $case (['s1', '160x120', '160x120'], ['s2', '80x0', '80x60'],
              ['s3', '0x60', '80x60'], ['s4', '100x100', '100x100'])
{
    my ($topic, $arg, $want) = @$case;
    my $r = run_producer('-b', $brokers, '-t', $topic, '-s', $arg,
                         '--no-pace', $video);
    is($r->{rc}, 0, "--size $arg: exit 0") or diag $r->{err};
    is(sizes($topic), "$want header $want", "--size $arg gives $want");
}

subtest '--loop 2 doubles the count' => sub {
    my $r = run_producer('-b', $brokers, '-t', 'l2', '--loop', '2',
                         '--no-pace', '-s', '160x0', $video);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    my @m = consume('l2');
    is(scalar @m, 20, '2 x 10 frames');
    like($r->{err}, qr/\b20 frames sent\b/, 'summary');
};

subtest '--max-frames' => sub {
    my $r = run_producer('-b', $brokers, '-t', 'n5', '-n', '5', '--loop',
                         '--no-pace', '-s', '160x0', $video);
    is($r->{rc}, 0, 'exit 0 (endless loop, stopped by -n)') or diag $r->{err};
    my @m = consume('n5');
    is(scalar @m, 5, '5 messages');
};

subtest 'several inputs play one after another' => sub {
    my $other = make_video("$dir/other.mp4", duration => 1, fps => 5,
                           size => '160x120');
    my $r = run_producer('-b', $brokers, '-t', 'two', '--no-pace', $video,
                         $other);
    is($r->{rc}, 0, 'exit 0') or diag $r->{err};
    my @m = consume('two');
    is(scalar @m, 15, '10 + 5 frames');
    my @w = map { header($_, 'width') } @m;
    is_deeply(\@w, [(320) x 10, (160) x 5], 'in input order');
    my @pts = map { header($_, 'pts-ms') } @m;
    is($pts[10], 1000, 'the second input continues the timeline');
};

done_testing;
