# A partition that starts reads back kafka_stream_catchup messages to find
# each camera's latest frame.  When that window comes in several fetches,
# its first messages may be frames of long ago (the camera sent another
# picture, or PNG, before): the viewer's first frame is still the newest
# of the whole window, never one of its beginning.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin, "$FindBin::Bin/../fault";

use Test::More;
use Time::HiRes qw(time);

use KafkaStream::Test topics => ['win:1'];
use Reliability;
use Fleet;

my $slow = slow_factor();
my @F = make_frames(32, format => 'png', size => '640x480');
my %index;
@index{@F} = (0 .. $#F);

# a fetch brings a few frames at most: the window takes several
my $ng = nginx_start(workers => 1, http => stream_http(<<'_EOC_',
        location /cam { kafka_stream win; kafka_stream_key $arg_id; }
_EOC_
    'kafka_stream_option fetch.message.max.bytes 20000;'
    . ' kafka_stream_linger 200ms;'));

# the worker knows the partitions, so it can place the key
ok(until_true(20 * $slow, sub { grep { /"win" has 1 partitions/ }
                                     log_lines($ng, 0) }),
   'the worker has counted the partitions');

cmp_ok(length $F[0], '>', 20000, 'the frames are over 20 kB: one a fetch');

# 30 frames of long ago, then the 2 of now
my $now = int(time * 1000);
produce_batch('win', [(map { [$F[$_], key => 'cam', timestamp =>
                              $now - 3_600_000 + $_] } 0 .. 29),
                      [$F[30], key => 'cam', timestamp => $now],
                      [$F[31], key => 'cam', timestamp => $now + 1]]);

my ($first) = first_part('/cam?id=cam', 5 * $slow);
is(defined $first ? $index{$first} // -1 : 'none', 31,
   'the first frame is the newest of the window, not of its first fetch');

nginx_stop($ng);
done_testing();
