# A reload while some partitions are read and others are cold: the new
# workers start with nothing read, the viewers who come back get frames of
# cameras whose partitions were read before and of cold ones, and each new
# worker reads only what its viewers need.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin, "$FindBin::Bin/../fault";

use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:16'];
use Reliability;
use Fleet;

my $slow = slow_factor();
my @F = make_frames(60, format => 'jpeg', size => '32x24');

my ($at, $ka, $kb) = keys_apart('cams', 2);
note "$ka on $at->{$ka}, $kb on $at->{$kb}";

my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_',
        location /cam { kafka_stream cams; kafka_stream_key $arg_id; }
_EOC_
    'kafka_stream_linger 1s;'));

ok(until_true(20 * $slow, sub { workers_have('brokers_up') }), 'connected');

my $fa = start_feed('cams', [@F[0 .. 29]], fps => 10, key => $ka);
my $fb = start_feed('cams', [@F[30 .. 59]], fps => 10, key => $kb);

my $va = open_viewer("/cam?id=$ka");
ok(consumed_is('cams', [$at->{$ka}], 5 * $slow), "$ka is read, $kb is not");
my @old = worker_pids($ng);

nginx_command($ng, 'reload');
ok(until_true(20 * $slow, sub { !grep { !exited($_) } @old }),
   'the old workers leave');
my $bytes = close_viewer($va);
like($bytes, qr/--kafka-stream-frame--\r\n\z/,
     'the old worker ended its stream with the closing boundary');

ok(until_true(20 * $slow, sub { workers_have('brokers_up') }),
   'the new workers are connected');
is("@{[consumed_all('cams')]}", '', 'the new workers read nothing');

my %in = map { ($_ => 1) } @F[0 .. 29];
my ($first) = first_part("/cam?id=$ka", 5 * $slow);
ok(defined $first && $in{$first}, "$ka (read before the reload) has frames");

%in = map { ($_ => 1) } @F[30 .. 59];
($first) = first_part("/cam?id=$kb", 5 * $slow);
ok(defined $first && $in{$first}, "$kb (cold before the reload) has frames");

# a viewer of one camera: the worker it lands on reads only its partition
ok(consumed_is('cams', [], 5 * $slow), 'after the linger nothing is read');
my $vb = open_viewer("/cam?id=$kb");
ok(until_true(5 * $slow, sub {
       my $c = consumed();
       my @busy = grep { @{$c->{$_}{cams} || []} } keys %$c;
       @busy && !grep { "@{$c->{$_}{cams}}" ne "$at->{$kb}" } @busy }),
   "a worker with a viewer of $kb reads only its partition");
close_viewer($vb);
ok(consumed_is('cams', [], 5 * $slow), 'and stops after the linger');

stop_feed($fa);
stop_feed($fb);
nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing();
