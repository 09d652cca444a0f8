# Self-test of t/helper/KafkaStream/Test.pm: a Kafka broker of the file's
# own, binary safe produce and consume, produce_later, broker control
# (kill -9, start, pause) and restart, topic administration, ffmpeg-made
# frames and video, and the multipart splitter.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../helper";
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(time);

use KafkaStream::Test topics => ['dbtech:1', 'cams:3', 'later:1',
                                 'files:1'], own_broker => 1;

my $addr = kafka_brokers();
like($addr, qr/^127\.0\.0\.1:\d+$/, 'the broker has an address');
is($ENV{TEST_NGINX_KAFKA_BROKERS}, $addr, 'and it is in the environment');

# every byte value, twice, and a key with NUL, CR, LF and 100 KB
my $value = join('', map { chr } 0 .. 255) x 2;
my $key = "k\0\r\n" . ('K' x 100_000);
my @headers = ('content-type' => "image/png", 'raw' => "a\0b\r\nc\xff",
               'empty' => '');

my $before = int(time * 1000);
produce('dbtech', $value, key => $key, headers => \@headers);
my $after = int(time * 1000) + 1;

my @m = consume('dbtech', count => 1, timeout => 10);
is(scalar @m, 1, 'one message consumed');
ok($m[0]{value} eq $value, 'its value came back byte for byte');
ok($m[0]{key} eq $key, 'its key too');
is_deeply($m[0]{headers}, \@headers, 'and its headers');
is($m[0]{partition}, 0, 'partition 0');
is($m[0]{offset}, 0, 'offset 0');
ok($m[0]{timestamp} >= $before && $m[0]{timestamp} <= $after,
   'the timestamp is the time of production');

produce('dbtech', 'no key');
@m = consume('dbtech', count => 2, timeout => 10);
is(scalar @m, 2, 'two messages now');
ok(!defined $m[1]{key}, 'a message without key has an undefined key');
is_deeply($m[1]{headers}, [], 'and no headers');

eval { produce('dbtech', 'x', headers => ["a\0b" => 'v']) };
like($@, qr/header name cannot contain NUL/, 'a NUL in a header name dies');

# partitions
produce('cams', 'to partition 2', partition => 2);
@m = consume('cams', partition => 2, timeout => 10);
is(scalar @m, 1, 'one message in cams/2');
is($m[0]{value}, 'to partition 2', 'with its value');
is($m[0]{partition}, 2, 'from partition 2');
is(scalar(consume('cams', partition => 1, timeout => 10)), 0,
   'cams/1 stays empty');

# files, in order
my $dir = tempdir('helper-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @paths;
for my $i (1 .. 3) {
    my $path = "$dir/file$i";
    open my $out, '>:raw', $path or die $!;
    print $out "file $i\0\n";
    close $out;
    push @paths, $path;
}
produce_files('files', \@paths, key => 'same');
@m = consume('files', count => 3, timeout => 10);
is_deeply([map { $_->{value} } @m], ["file 1\0\n", "file 2\0\n", "file 3\0\n"],
          'produce_files sends one message per file, in order');
is_deeply([map { $_->{key} } @m], [('same') x 3], 'with the key');

# produce_later
my $pid = produce_later(0.1, 0.05, 'later', ['one', 'two', 'three']);
ok($pid > 0, 'produce_later returns a pid');
ok(wait_for_children(), 'the produce_later child succeeded');
@m = consume('later', count => 3, timeout => 10);
is_deeply([map { $_->{value} } @m], ['one', 'two', 'three'],
          'produce_later produced the payloads in order');

$pid = produce_later(0, 0, 'no-such-broker-topic', ['x'], partition => 99,
                     config => ['message.timeout.ms=1000']);
ok(!wait_for_children(), 'a failing produce_later child is reported');

# broker control: the file's own cluster
$pid = (broker_control('pid 1') =~ /^pid (\d+)$/)[0];
ok(kill(0, $pid), 'broker_control names the broker\'s pid');
eval { broker_control('no such command') };
like($@, qr/error: unknown command/, 'a bad control command dies');

is(broker_control('kill 1'), 'ok', 'broker killed');
ok(!kill(0, $pid), 'and gone');
is(broker_control('start 1'), 'ok', 'started again');
produce('dbtech', 'after start');
@m = consume('dbtech', count => 3, timeout => 10);
is($m[2]{value}, 'after start',
   'the cluster works after kill -9 and start, and kept its messages');

is(broker_control('pause 1'), 'ok', 'broker paused');
my $t0 = time;
eval {
    produce('dbtech', 'while paused', config => ['message.timeout.ms=1500']);
};
like($@, qr/producing to dbtech failed/, 'a paused broker takes nothing');
ok(time - $t0 >= 1.4, 'the producer waited for it');
is(broker_control('resume 1'), 'ok', 'resumed');

# restart: SIGKILL and start; the data stays
is(restart_broker(), $addr, 'restart_broker keeps the address');
@m = consume('dbtech', count => 3, timeout => 10);
is($m[2]{value}, 'after start', 'and the messages');

# topics
topic_admin('create', 'made:3');
my @lines = topic_admin('describe', 'made');
is(scalar @lines, 3, 'topic_admin creates a topic, describe lists it');
like($lines[0], qr/^partition 0 leader 1 replicas 1 isr 1$/,
     'with leader, replicas and in-sync replicas');
topic_admin('delete', 'made');
eval { topic_admin('describe', 'made') };
like($@, qr/failed/, 'and deletes it');

# media
sub probe {
    my ($data, $suffix) = @_;
    my $path = "$dir/probe.$suffix";
    open my $out, '>:raw', $path or die $!;
    print $out $data;
    close $out;
    my $info = `ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 $path`;
    chomp $info;
    return $info;
}

my @png = make_frames(5, format => 'png', size => '64x48');
is(scalar @png, 5, 'five PNG frames');
is(scalar(keys %{{ map { $_ => 1 } @png }}), 5, 'all different');
is(scalar(grep { substr($_, 0, 8) eq "\x89PNG\r\n\x1a\n" } @png), 5,
   'each with the PNG signature');
is(probe($png[4], 'png'), 'png,64,48', 'ffprobe reads a 64x48 PNG');

my @jpeg = make_frames(4, format => 'jpeg', size => '32x24');
is(scalar(keys %{{ map { $_ => 1 } @jpeg }}), 4, 'four different JPEGs');
is(scalar(grep { /\A\xff\xd8/ && /\xff\xd9\z/ } @jpeg), 4,
   'each from SOI to EOI');
is(probe($jpeg[0], 'jpg'), 'mjpeg,32,24', 'ffprobe reads a 32x24 JPEG');

my $video = make_video("$dir/v.mp4", duration => 1, fps => 10,
                       size => '160x120');
my $frames = `ffprobe -v error -count_frames -show_entries stream=nb_read_frames,width -of csv=p=0 $video`;
chomp $frames;
is($frames, '160,10', 'make_video: 10 frames of 160 pixels wide');

# multipart/x-mixed-replace
my $b = 'frame-boundary';
my $body = "--$b\r\nContent-Type: image/png\r\nContent-Length: 5\r\n\r\n"
           . "a\r\nb\0\r\n"
           . "--$b\r\nContent-Type: image/jpeg\r\nX-Offset: 7\r\n\r\n"
           . "--xx\r\n\r\n"
           . "--$b\r\nContent-Type: image/png\r\n\r\n"
           . "third\r\n"
           . "--$b\r\nContent-Type: image/png\r\n\r\nincompl";
my @parts = multipart_parts($body, $b);
is(scalar @lines, 3, 'multipart: three complete parts, the cut one dropped');
is_deeply($parts[0], { headers => { 'content-type' => 'image/png',
                                    'content-length' => 5 },
                       body => "a\r\nb\0" }, 'the first part');
is($parts[1]{headers}{'x-offset'}, 7, 'the second part\'s headers');
is($parts[1]{body}, "--xx\r\n", 'and its body');
is($parts[2]{body}, 'third', 'the third part');
@parts = multipart_parts("--$b\r\n\r\nlast\r\n--$b--\r\n", $b);
is_deeply([map { $_->{body} } @parts], ['last'],
          'a closed stream keeps its last part');
is(scalar(multipart_parts('no boundary here', $b)), 0,
   'no part without a boundary');

done_testing();
