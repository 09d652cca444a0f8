# Errors: one clear line naming the input or the limit, the right exit
# code, bounded time, and the other inputs still played.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

use KafkaStream::Test topics => ['dbtech:1', 'mixed:1', 'big:1'];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/ok.mp4", duration => 1, fps => 10,
                       size => '160x120');
my $brokers = kafka_brokers();

sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>:raw', $path or die "$path: $!";
    print $fh $data;
    close $fh;
    return $path;
}

my $text = write_file("$dir/notes.mp4", "this is not a video\n" x 20);
my $empty = write_file("$dir/empty.mp4", '');
my $audio = "$dir/tone.m4a";
system('ffmpeg', '-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i',
       'sine=frequency=440:duration=1', $audio) == 0
    or BAIL_OUT('ffmpeg cannot make the audio file');

# a valid container whose H.264 packets are all noise: the decoder fails
my $garbled = "$dir/garbled.mkv";
system('ffmpeg', '-v', 'error', '-nostdin', '-y', '-i', $video, '-c:v',
       'copy', '-bsf:v', 'noise=amount=1', $garbled) == 0
    or BAIL_OUT('ffmpeg cannot make the garbled file');

my @bad_inputs = (
    ["$dir/missing.mp4", qr/missing\.mp4: cannot open: No such file/],
    [$text,  qr/notes\.mp4: cannot open: Invalid data/],
    [$empty, qr/empty\.mp4: cannot open: /],
    [$audio, qr/tone\.m4a: no video stream/],
    [$garbled, qr/garbled\.mkv: no frame could be decoded: Invalid data/],
);

for my $case (@bad_inputs) {
    my ($input, $re) = @$case;
    my $r = run_producer('-b', $brokers, '--no-pace', $input);
    is($r->{rc}, 1, "$input: exit 1");
    like($r->{err}, $re, "$input: the reason");
}

subtest 'a bad input among good ones' => sub {
    my $r = run_producer('-b', $brokers, '-t', 'mixed', '--no-pace',
                         $video, "$dir/missing.mp4", $video);
    is($r->{rc}, 1, 'exit 1 reports the failure');
    like($r->{err}, qr/missing\.mp4: cannot open/, 'names the bad input');
    my @m = consume('mixed');
    is(scalar @m, 20, 'both good inputs were played');
};

subtest 'unreachable broker: a clear error in bounded time' => sub {
    my $r = run_producer('-b', '127.0.0.1:1', '-X', 'message.timeout.ms=2000',
                         $video);
    is($r->{rc}, 1, 'exit 1');
    like($r->{err}, qr/cannot deliver frame 0 to topic 'dbtech' at 127\.0\.0\.1:1: .*timed out.*message\.timeout\.ms=2000/,
         'says what failed and why');
    like($r->{err}, qr/0 frames sent, 10 failed/, 'counts the failed frames');
    cmp_ok($r->{elapsed}, '<', 8,
           "message.timeout.ms=2000 is honoured ($r->{elapsed} s)");
};

subtest 'unreachable broker, default timeout' => sub {
    my $r = run_producer('-b', '127.0.0.1:1', '--no-pace', $video);
    is($r->{rc}, 1, 'exit 1');
    like($r->{err}, qr/message\.timeout\.ms=10000/, 'the 10 s default');
    cmp_ok($r->{elapsed}, '<', 20, "no hang ($r->{elapsed} s)");
};

subtest 'a frame over the message size limit' => sub {
    my $r = run_producer('-b', $brokers, '-t', 'big', '-X',
                         'message.max.bytes=2000', '--no-pace', $video);
    is($r->{rc}, 1, 'exit 1');
    like($r->{err}, qr/frame 0 is \d+ bytes, over the producer's limit of 2000 bytes \(message\.max\.bytes\): use --format jpeg or a smaller --size/,
         'names size and limit and what to do');
    my @lines = grep { /over the/ } split /\n/, $r->{err};
    is(scalar @lines, 1, 'said once, then stopped');
};

subtest 'a frame over the topic\'s max.message.bytes' => sub {
    # the producer's own limit lets the frames go; the broker refuses them
    topic_admin('create', 'small:1', '-c', 'max.message.bytes=5000');
    my $r = run_producer('-b', $brokers, '-t', 'small', '--no-pace', $video);
    is($r->{rc}, 1, 'exit 1');
    like($r->{err}, qr/frame 0 is \d+ bytes, more than topic 'small' takes \(its max\.message\.bytes\): use --format jpeg or a smaller --size WxH, or raise the topic's max\.message\.bytes/,
         'names the frame, its size, the topic and its limit, and what to do');
    my @lines = grep { /more than topic/ } split /\n/, $r->{err};
    is(scalar @lines, 1, 'said once');
    like($r->{err}, qr/\b0 frames sent, [1-9]\d* failed\b/,
         'the refused frames counted as failed');
    is(scalar(consume('small')), 0, 'none reached the topic');
};

my @usage = (
    [[], qr/no INPUT given/],
    [['--bogus', $video], qr/unrecognized option '--bogus'/],
    [['-f', 'gif', $video], qr/--format: 'gif' is neither png nor jpeg/],
    [['-s', '12', $video], qr/--size: '12' is not WxH/],
    [['-s', '0x0', $video], qr/--size: '0x0' is not WxH/],
    [['-j', '0', $video], qr/--threads: '0' is not a number from 1/],
    [['-q', '99', '-f', 'jpeg', $video], qr/--quality: '99'/],
    [['--png-level', 'x', $video], qr/--png-level: 'x'/],
    [['-r', '-5', $video], qr/--fps: '-5'/],
    [['--loop=0', $video], qr/--loop: '0'/],
    [['-X', 'no.such.property=1', $video], qr/-X no\.such\.property=1: .*No such configuration property/],
    [['-X', 'novalue', $video], qr/-X novalue: expected name=value/],
    [['--input-format', 'nope', $video], qr/--input-format: FFmpeg has no input format 'nope'/],
    [['--io-timeout', '-1', $video], qr/--io-timeout: '-1' is not a number of seconds/],
);

for my $case (@usage) {
    my ($args, $re) = @$case;
    my $r = run_producer('-b', $brokers, @$args);
    is($r->{rc}, 2, "@$args: exit 2");
    like($r->{err}, $re, "@$args: says what is wrong");
    like($r->{err}, qr/Try 'kafka-stream-producer --help'/, "@$args: hint");
}

my $r = run_producer('--help');
is($r->{rc}, 0, '--help exits 0');
like($r->{out}, qr/^usage: kafka-stream-producer \[options\] INPUT/, 'usage');
like($r->{out}, qr/--png-level N.*default 1/s, 'explains the png level');

$r = run_producer('--version');
like($r->{out}, qr/^kafka-stream-producer \d+\.\d+/, '--version');

done_testing;
