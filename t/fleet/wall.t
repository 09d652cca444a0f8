# A wall reads from Kafka only what its cameras show, as viewers do: each
# key of ?keys= its partition (where the producer's partitioner put it),
# a wall of every key all partitions.  Its needs go when it ends: the
# partitions linger, then stop.  Cold cameras still come at once, each
# with its latest frame.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin, "$FindBin::Bin/../fault";

use Test::More;

use KafkaStream::Test topics => ['cams:16'];
use Reliability;
use Fleet;

my $slow = slow_factor();
my @F = make_frames(8, format => 'jpeg', size => '32x24');
my %index;
@index{@F} = (0 .. $#F);

# three keys on three partitions
my ($at, $ka, $kb, $kc) = keys_apart('cams', 3);
my ($pa, $pb, $pc) = @$at{$ka, $kb, $kc};
note "$ka is on partition $pa, $kb on $pb, $kc on $pc";

sub sorted { join ' ', sort { $a <=> $b } @_ }

# "frame:key" of each whole part of a wall's bytes, in order
sub wall_parts {
    my ($bytes) = @_;
    $bytes =~ s/\A.*?\r\n\r\n//s or return ();
    return map { ($index{$_->{body}} // -1) . ':'
                 . ($_->{headers}{'x-key'} // '') }
           multipart_parts($bytes, 'kafka-stream-frame');
}

sub wall_has {
    my ($v, @want) = @_;
    return until_true(5 * $slow, sub {
        my %got = map { ($_ => 1) } wall_parts(peek_viewer($v));
        return !grep { !$got{$_} } @want;
    });
}

my $ng = nginx_start(workers => 1,
                     http => stream_http(
                         'location /wall { kafka_stream_wall cams; }',
                         'kafka_stream_linger 300ms;'));

ok(until_true(20 * $slow, sub { my $st = status();
                                $st && $st->{workers}[0]{brokers_up} }),
   'the worker is connected');
is(sorted(consumed_all('cams')), '', 'nobody watches: it reads nothing');

# cold cameras: their frames are in Kafka before anyone watches
produce('cams', $F[1], key => $ka);
produce('cams', $F[2], key => $kb);
produce('cams', $F[3], key => $kc);

my $w1 = open_viewer("/wall?keys=$ka,$kb");
ok(consumed_is('cams', [sort { $a <=> $b } $pa, $pb], 5 * $slow),
   "a wall of $ka and $kb: partitions $pa and $pb, and only those");
ok(wall_has($w1, "1:$ka", "2:$kb"),
   'each cold camera of the wall came with its latest frame')
    or diag(explain([wall_parts(peek_viewer($w1))]));
is(status()->{streams}[0]{walls}, 1, 'the status counts the wall');

# a second wall, one key shared with the first
my $w2 = open_viewer("/wall?keys=$kb,$kc");
ok(consumed_is('cams', [sort { $a <=> $b } $pa, $pb, $pc], 5 * $slow),
   "a wall of $kb and $kc: partition $pc too");
ok(wall_has($w2, "2:$kb", "3:$kc"), 'the second wall has its cameras')
    or diag(explain([wall_parts(peek_viewer($w2))]));

# the first wall ends: its partition lingers, then stops; the shared one
# stays read for the second wall
my $log = log_size($ng);
my @got = wall_parts(close_viewer($w1));
is(join(' ', grep { !/:$kc$/ } @got), join(' ', @got),
   "the first wall got no frame of $kc");
ok(consumed_is('cams', [sort { $a <=> $b } $pb, $pc], 5 * $slow),
   "after the linger: $pb and $pc only");
ok((grep { /no longer consuming "cams" \[$pa\]/ } log_lines($ng, $log)),
   'the stop is logged');

produce('cams', $F[4], key => $kb);
ok(wall_has($w2, "4:$kb"), 'the second wall still gets new frames');

close_viewer($w2);
ok(consumed_is('cams', [], 5 * $slow), 'no wall left: nothing is read');

# a wall of every key: all partitions, every camera's latest frame
my $all = open_viewer('/wall');
ok(consumed_is('cams', [0 .. 15], 5 * $slow),
   'a wall of every key: all 16 partitions');
ok(wall_has($all, "1:$ka", "4:$kb", "3:$kc"),
   'it shows the cold cameras at once, each with its latest frame')
    or diag(explain([wall_parts(peek_viewer($all))]));

produce('cams', $F[5], key => 'newcomer');
ok(wall_has($all, '5:newcomer'), 'a key seen later joins the wall');

close_viewer($all);
ok(consumed_is('cams', [], 5 * $slow), 'it ended: nothing is read');
is(status()->{streams}[0]{walls}, 0, 'no wall is counted');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing();
