# A camera whose partition no worker reads: its first frame is its latest
# one, even on a partition that other cameras share, live frames follow,
# a snapshot waits for it, an unfiltered viewer gets the newest frame, a
# replay hands over to live; kafka_stream_partitioner finds keys that
# another partitioner placed.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin, "$FindBin::Bin/../fault";

use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:16', 'crc:16'];
use Reliability;
use Fleet;

my $slow = slow_factor();
my @F = make_frames(40, format => 'jpeg', size => '32x24');
my %index;
@index{@F} = (0 .. $#F);

sub idx { defined $_[0] ? $index{$_[0]} // -1 : 'none' }

# two keys that share a partition, one elsewhere, one without frames
my $at = key_partitions('cams', [map { "cam$_" } 1 .. 40]);
my %on;
push @{$on{$at->{$_}}}, $_ for sort keys %$at;
my ($shared) = grep { @{$on{$_}} >= 2 } sort { $a <=> $b } keys %on;
my ($ka, $kb) = @{$on{$shared}};
my ($kc) = grep { $at->{$_} != $shared } sort keys %$at;
note "$ka and $kb share partition $shared; $kc is on $at->{$kc}";

my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_',
        location /cam { kafka_stream cams; kafka_stream_key $arg_id; }
        location /snap {
            kafka_stream_snapshot cams;
            kafka_stream_key $arg_id;
        }
        location /all { kafka_stream cams; }
        location /replay {
            kafka_stream cams;
            kafka_stream_key $arg_id;
            kafka_stream_replay on;
        }
        location /crc {
            kafka_stream crc;
            kafka_stream_key $arg_id;
            kafka_stream_partitioner consistent;
        }
        location /crc-murmur2 {
            kafka_stream crc;
            kafka_stream_key $arg_id;
        }
        location /crc-all {
            kafka_stream crc;
            kafka_stream_key $arg_id;
            kafka_stream_partitioner all;
        }
_EOC_
    'kafka_stream_linger 200ms;'));

ok(until_true(20 * $slow, sub { workers_have('brokers_up') }),
   'both workers connected');

# frames of the three cameras, in turn, while nobody watches
my $t_a1 = int(time * 1000);
produce_batch('cams', [[$F[1], key => $ka], [$F[2], key => $kb],
                       [$F[3], key => $ka], [$F[4], key => $kb],
                       [$F[5], key => $ka], [$F[6], key => $kb],
                       [$F[7], key => $kc], [$F[8], key => $kc]]);
is("@{[consumed_all('cams')]}", '', 'nobody watches: nothing is read');

my ($first, $after) = first_part("/cam?id=$ka", 5 * $slow);
is(idx($first), 5, "a cold camera's first frame is its latest one");
note sprintf 'first frame after %.0f ms', ($after // 0) * 1000;
ok(consumed_is('cams', [], 5 * $slow), 'it stops again');

($first) = first_part("/cam?id=$kb", 5 * $slow);
is(idx($first), 6, 'so is that of the camera beside it on the partition');
ok(consumed_is('cams', [], 5 * $slow), 'stopped');

# the status lists the keys seen, whichever worker answers, read or not
my @lists = map {
    my $st = status();
    join ' ', sort @{($st->{streams}[0] || {})->{keys} || []};
} 1 .. 10;
is_deeply([grep { !/\b$ka\b/ || !/\b$kb\b/ } @lists], [],
          'every answer of the status lists both keys, no worker reading them');

# live frames follow the first one
my $v = open_viewer("/cam?id=$ka");
ok(until_true(5 * $slow, sub { grep { $_ eq $F[5] } parts_of(peek_viewer($v)) }),
   'a cold viewer: the latest frame');
produce('cams', $F[9], key => $ka);
produce('cams', $F[10], key => $kb);
produce('cams', $F[11], key => $ka);
ok(until_true(5 * $slow, sub { grep { $_ eq $F[11] } parts_of(peek_viewer($v)) }),
   'then the new ones');
my @got = map { idx($_) } parts_of(close_viewer($v));
is("@got", '5 9 11', 'its camera only, in order');
ok(consumed_is('cams', [], 5 * $slow), 'stopped');

# a snapshot of a cold camera, and of one without any frame
my $r = http_request("GET /snap?id=$kc HTTP/1.0\r\nHost: x\r\n\r\n",
                     timeout => 5 * $slow);
my ($body) = $r =~ /\r\n\r\n(.*)\z/s;
like($r, qr{^HTTP/1\.\d 200}, 'a snapshot of a cold camera: 200');
is(idx($body), 8, 'its latest frame');

my $t0 = time;
$r = http_request("GET /snap?id=nosuchcam HTTP/1.0\r\nHost: x\r\n\r\n",
                  timeout => 10 * $slow);
like($r, qr{^HTTP/1\.\d 503}, 'a camera without frames: 503, after waiting');
cmp_ok(time - $t0, '>=', 2.5, 'it waited for a frame');
ok(consumed_is('cams', [], 5 * $slow), 'stopped');

# an unfiltered viewer of a cold topic: the partitions catch up one by
# one, each giving the newest frame it has; the viewer soon has the newest
# of all, and never an older frame after a newer one
$v = open_viewer('/all');
ok(until_true(5 * $slow, sub { grep { $_ eq $F[11] } parts_of(peek_viewer($v)) }),
   'an unfiltered cold viewer gets the newest frame');
my $bytes = close_viewer($v);
my @ts = stamps_of($bytes);
is("@ts", "@{[sort { $a <=> $b } @ts]}", 'its frames, oldest first (@ts)');
cmp_ok(scalar @ts, '<=', 16, 'at most one a partition');
ok(consumed_is('cams', [], 5 * $slow), 'stopped');

# a replay of a cold camera, from its first frame: it hands over to live
my $rp = open_viewer(sprintf('/replay?id=%s&since=%.3f&speed=8', $ka,
                             $t_a1 / 1000));
ok(until_true(10 * $slow, sub { grep { $_ eq $F[11] } parts_of(peek_viewer($rp)) }),
   'the replay reaches the last frame');
produce('cams', $F[12], key => $ka);
ok(until_true(10 * $slow, sub { grep { $_ eq $F[12] } parts_of(peek_viewer($rp)) }),
   'and goes on live');
@got = map { idx($_) } parts_of(close_viewer($rp));
is("@got", '1 3 5 9 11 12', 'every frame of its camera, once, in order');

# keys another partitioner placed: kafka_stream_partitioner consistent
# finds them; murmur2 (the default) looks elsewhere; "all" reads all
my $crc = key_partitions('crc', [map { "cam$_" } 1 .. 40],
                         config => ['partitioner=consistent']);
my ($kx) = grep { $crc->{$_} != $at->{$_} } sort keys %$crc;
note "$kx: murmur2 puts it on $at->{$kx}, crc32 (consistent) on $crc->{$kx}";
produce('crc', $F[20], key => $kx, config => ['partitioner=consistent']);

($first) = first_part("/crc?id=$kx", 5 * $slow);
is(idx($first), 20, 'kafka_stream_partitioner consistent finds the key');
ok(consumed_is('crc', [], 5 * $slow), 'stopped');

$v = open_viewer("/crc-murmur2?id=$kx");
ok(consumed_is('crc', [$at->{$kx}], 5 * $slow),
   'murmur2 reads where murmur2 would put the key');
close_viewer($v);
ok(consumed_is('crc', [], 5 * $slow), 'stopped');

($first) = first_part("/crc-all?id=$kx", 5 * $slow);
is(idx($first), 20, 'kafka_stream_partitioner all finds it too');
ok(consumed_is('crc', [], 5 * $slow), 'stopped');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing();
