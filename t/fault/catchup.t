# Two locations read one topic of 2 partitions: all of it, and partition
# 1 alone.  A worker's first message of partition 1 is older than the
# frame "all" already shows (the catch-up at a partition's start: an
# older frame must not replace a newer one), so "all" refuses it, and
# partition 1's location must still get it.  The worker once freed the
# frame when the first location refused it and handed the freed memory to
# the second (a worker crashed with "malloc(): unaligned tcache chunk
# detected" in t/fault/leader.t).  The frames here are over 32 kB, so
# each lives in a memfd mapping that its release unmaps: a freed frame
# handed on cannot be sent ("writev() failed (14: Bad address)"); under
# make test SANITIZE=1 AddressSanitizer names the use after free.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use Test::More;
use Time::HiRes qw(time);

use KafkaStream::Test topics => ['catchup:2'];
use Reliability;

my @F = make_frames(3, format => 'png', size => '640x480');
ok(!grep({ length($_) < 32 * 1024 } @F), 'the frames are over 32 kB');
my $now = int(time * 1000);

# what "all" shows when the workers start: a frame of partition 0
produce('catchup', $F[0], partition => 0, timestamp => $now);

# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $always = 'kafka_stream_always_consume on;';
my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_', $always));
        location /all { kafka_stream catchup; }
        location /one { kafka_stream catchup; kafka_stream_partition 1; }
_EOC_

ok(until_true(20 * slow_factor(), sub { workers_have('partitions', 2)
                                        && workers_have('frames_in', 1) }),
   'both workers consume the 2 partitions and have the frame of 0');

my $all = start_capture("GET /all HTTP/1.0\r\nHost: x\r\n\r\n");
my $one = start_capture("GET /one HTTP/1.0\r\nHost: x\r\n\r\n");
ok(until_true(10 * slow_factor(), sub { watching() == 2 }),
   'a viewer of each');

# partition 1's first message, a minute older; then a new one
produce('catchup', $F[1], partition => 1, timestamp => $now - 60000);
ok(until_true(10 * slow_factor(), sub { workers_have('frames_in', 2) }),
   'both workers have the old frame of partition 1');
produce('catchup', $F[2], partition => 1, timestamp => $now + 1000);
ok(until_true(10 * slow_factor(), sub { workers_have('frames_in', 3) }),
   'and the next one');

# the parts the viewers got, once the last one is there
sub parts {
    my ($cap, $n) = @_;
    until_true(10 * slow_factor(), sub {
        my $raw = do {
            open my $in, '<:raw', $cap->{file}->filename or return 0;
            local $/;
            <$in> // '';
        };
        return @{parse_stream($raw)->{parts}} >= $n;
    });
    my %index;
    @index{@F} = 0 .. $#F;
    return join ' ', map { $index{$_->{body}} // 'garbage' }
                     @{parse_stream(stop_capture($cap))->{parts}};
}

is(parts($one, 2), '1 2', 'partition 1\'s viewer gets the old frame, then '
                          . 'the new one, intact');
is(parts($all, 2), '0 2', 'the viewer of all of it gets no older frame '
                          . 'after a newer one');

nginx_done($ng);

done_testing;
