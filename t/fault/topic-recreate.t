# The topic is deleted and created again (with 2 partitions instead of 1)
# while 10 viewers watch.
#
# What a viewer gets is what a broker outage gives: the stream stays
# open with the last frame it had (a snapshot answers with that frame),
# and once the topic is back its frames come on the same connection,
# from both partitions, in order.  Closing the streams would not help a
# viewer: the page would reconnect to the same nothing.  The operator
# reads it in the error log, once per worker, not once per poll:
#
#   kafka stream: topic "NAME" does not exist: its viewers stay connected
#       and get its frames once it is created
#   kafka stream: topic "NAME" is back: frames again from [P] offset N
#
# The worker's consumer finds the new topic by itself.  Its old offset
# is out of range there, and it resumes at the new end (auto.offset.reset
# latest, as a live stream must: "earliest" would replay the whole
# retained log at once after any offset lost to retention): frames
# produced to the new topic before it looked are skipped, as frames are
# before a worker starts.
#
# Measured (2 cores shared with other test runs, 11 runs of this file):
# both workers logged the deletion 0.30 to 0.36 s after it; the viewers'
# first frames of the new topic came 0.60 to 1.82 s after its creation
# (partition 0 when librdkafka's fetch met the out-of-range offset,
# partition 1 when the statistics showed it), 5 to 18 frames (0.5 to
# 1.8 s at 10 fps) skipped at a partition's start.  The test allows
# $Back s.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use List::Util qw(max min);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['recreated:1'];
use Reliability;

my $Viewers = 10;
my $slow = slow_factor();
my $Back = 5 * $slow;

my @F = make_frames(300, format => 'png', size => '64x48');
my %index;
@index{@F} = 0 .. $#F;

# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $always = 'kafka_stream_always_consume on;';
my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_', $always));
        location /stream { kafka_stream recreated; }
        location /snapshot { kafka_stream_snapshot recreated; }
_EOC_

ok(until_true(20 * $slow, sub { workers_have('brokers_up')
                                && workers_have('partitions') }),
   'both workers consume the topic');

my $pool = start_viewers(n => $Viewers, uri => '/stream', frames => \@F);
ok(until_true(10 * $slow, sub { watching() == $Viewers }),
   "$Viewers viewers watch");

# frames 0 .. 39 in the old topic, all taken by both workers
my $feed = start_feed('recreated', [@F[0 .. 39]], fps => 10, count => 40);
ok(until_true(20 * $slow, sub { workers_have('frames_in', 40) }),
   'the old topic\'s 40 frames reached both workers');
stop_feed($feed);

sub snapshot {
    my $r = http_request("GET /snapshot HTTP/1.0\r\nHost: x\r\n\r\n");
    return -1 if !defined $r || $r !~ m{^HTTP/1\.\d 200.*?\r\n\r\n(.*)\z}s;
    return $index{$1} // -1;
}

# the lines of the log that name the topic's fate, by worker
sub said {
    my ($re) = @_;
    return { map { /(\d+)#\d+: $re/ ? ($1 => 1) : () } log_lines($ng, 0) };
}

my $gone_re = qr/kafka stream: topic "recreated" does not exist: its viewers/;
my $back_re = qr/kafka stream: topic "recreated" is back: frames again from/;

my $deleted_at = time;
topic_admin('delete', 'recreated');

my $noticed;
ok(until_true(30 * $slow, sub { keys %{said($gone_re)} == 2 }),
   'both workers log that the topic does not exist');
$noticed = time - $deleted_at;
diag sprintf 'the deletion logged %.2f s after it', $noticed;

# some time without the topic: the viewers stay, the snapshot answers
my (@snaps, $min_watching);
$min_watching = $Viewers;
until_true(10 * $slow, sub {
    push @snaps, snapshot();
    $min_watching = min($min_watching, watching());
    return time > $deleted_at + $noticed + 3;
}, 0.2);

is($min_watching, $Viewers, 'the viewers stay connected without the topic');
is(join(',', grep { $_ != 39 } @snaps), '',
   'a snapshot answers with the old topic\'s last frame ('
   . scalar(@snaps) . ' snapshots)');

# the new topic, two partitions: frames 100 .. in partition 0, 200 .. in 1
topic_admin('create', 'recreated:2:1', '-c', 'max.message.bytes=16777216');
my $created_at = time;
my @feeds = map { start_feed('recreated', [@F[100 * ($_ + 1) ..
                                              100 * ($_ + 1) + 79]],
                             fps => 10, partition => $_, count => 80) } 0, 1;

ok(until_true(30 * $slow, sub { keys %{said($back_re)} == 2 }),
   'both workers log that the topic is back');
ok(until_true(15 * $slow, sub { workers_have('partitions', 2) }),
   'and consume its 2 partitions');

# 20 more frames in each worker
my $st = status();
my %mid = map { ($_->{pid} => $_->{frames_in}) } @{$st->{workers}};
ok(until_true(20 * $slow, sub {
       my $s = status() or return 0;
       return !grep { $_->{frames_in} < ($mid{$_->{pid}} // 1e9) + 20 }
              @{$s->{workers}};
   }), 'the new topic\'s frames flow to both workers');

my $snap = snapshot();
ok($snap >= 100, "the snapshot is a frame of the new topic ($snap)");

my @produced = map { stop_feed($_) } @feeds;
my $rep = stop_viewers($pool);

my (@lost, @late, @order, @skipped, @delays);
for my $v (@$rep) {
    my @c = @{$v->{conns}};
    push @lost, $v->{id} if @c != 1 || $c[0]{error} || !$c[0]{cut};
    my @p = @{$c[0]{parts}};

    for my $part (0, 1) {
        my $base = 100 * ($part + 1);
        my @mine = grep { $_->[1] >= $base && $_->[1] < $base + 100 } @p;

        if (!@mine) {
            push @late, "$v->{id}/p$part: none";
            next;
        }

        my $d = $mine[0][0] - $created_at;
        push @delays, $d;
        push @late, sprintf('%d/p%d: %.2f s', $v->{id}, $part, $d)
            if $d > $Back;
        push @skipped, $mine[0][1] - $base;

        my @i = map { $_->[1] } @mine;
        my @gaps = grep { $i[$_] != $i[$_ - 1] + 1 } 1 .. $#i;
        push @order, "$v->{id}/p$part: $i[$gaps[0] - 1] then $i[$gaps[0]]"
            if @gaps;
    }
}

is("@lost", '', 'no viewer was disconnected');
is("@late", '', "every viewer has both partitions' frames within $Back s "
                . 'of the creation');
diag sprintf 'first frames of the new topic %.2f to %.2f s after its '
             . 'creation; %d to %d frames skipped at a partition\'s start',
             min(@delays), max(@delays), min(@skipped), max(@skipped)
    if @delays;
is("@order", '', 'after its first frame, each partition\'s frames in '
                 . 'order, none missing, none twice');

my @log = log_lines($ng, 0);
is(scalar(grep { /$gone_re/ } @log), 2, 'the deletion is said once per '
                                        . 'worker');
is(scalar(grep { /$back_re/ } @log), 2, 'the return too');
nginx_done($ng);

done_testing;
