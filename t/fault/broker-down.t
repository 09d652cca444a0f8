# The brokers go away while 50 viewers watch: nobody is disconnected,
# frames flow again within 2 s of the brokers' return, in order, and the
# error log says so in a bounded number of lines, not one per poll.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use List::Util qw(max min);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:1'];
use Reliability;

my $Viewers = 50;
my $Outage = 6;             # seconds the brokers are down
my $slow = slow_factor();

my @F = make_frames(400, format => 'png', size => '64x48');

# no kafka_stream_option: the module's defaults must recover quickly
# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $ng = nginx_start(workers => 2,
                     http => stream_http('location /stream { kafka_stream cams; }',
                                         'kafka_stream_always_consume on;'));

ok(until_true(20 * $slow, sub { workers_have('brokers_up')
                                && workers_have('partitions') }),
   'both workers are connected and consume the partition');

my $feed = start_feed('cams', \@F, fps => 10);
my $pool = start_viewers(n => $Viewers, uri => '/stream', frames => \@F);

ok(until_true(10 * $slow, sub { watching() == $Viewers }),
   "$Viewers viewers watch");

# frames reach the viewers before the outage
my $sent0 = sent();
ok(until_true(10 * $slow, sub { sent() >= $sent0 + 3 * $Viewers }),
   'frames are flowing');

sub sent { status_sum('parts_sent') }

my $log_from = log_size($ng);
my $down_at = time;
broker_control('down -1');

ok(until_true(15 * $slow, sub { status_sum('brokers_up') == 0 }),
   'both workers notice that no broker is up');

# the viewers stay through the outage
my $min_watching = $Viewers;
until_true($Outage, sub {
    my $w = watching();
    $min_watching = min($min_watching, $w) if $w >= 0;
    return time > $down_at + $Outage;
}, 0.2);
is($min_watching, $Viewers, 'all viewers stay connected during the outage');

my $sent_at_up = sent();
my $up_at = time;
broker_control('up -1');

ok(until_true(15 * $slow, sub { sent() >= $sent_at_up + 2 * $Viewers }),
   'frames flow again');

# time for every viewer to get a few frames (valgrind: more)
sleep($slow > 1 ? 10 : 2);
my $produced = stop_feed($feed);
my $rep = stop_viewers($pool);
my @log = log_lines($ng, $log_from);

ok($produced > 10 * ($Outage + 2), "the feed produced $produced frames");

my (@lost, @late, @unordered, @before, $latest);
$latest = 0;

for my $v (@$rep) {
    my @c = @{$v->{conns}};
    push @lost, $v->{id} if @c != 1 || $c[0]{error} || !$c[0]{cut}
                            || ($c[0]{status} // 0) != 200;
    my @p = @{$c[0]{parts}};
    push @before, $v->{id} if !grep { $_->[0] < $down_at } @p;

    my ($first_after) = grep { $_->[0] > $up_at } @p;
    if (!$first_after) {
        push @late, "$v->{id}: none";
    } else {
        my $d = $first_after->[0] - $up_at;
        $latest = max($latest, $d);
        push @late, sprintf('%d: %.2f s', $v->{id}, $d) if $d > 2 * $slow;
    }

    my @i = map { $_->[1] } @p;
    for my $k (1 .. $#i) {
        if ($i[$k] < 0 || $i[$k] <= $i[$k - 1]) {
            push @unordered, "$v->{id}: $i[$k - 1] then $i[$k]";
            last;
        }
    }
}

is("@lost", '', 'no viewer was disconnected or failed');
is("@before", '', 'every viewer had frames before the outage');
is("@late", '', 'every viewer has frames again within 2 s of the brokers '
                . 'coming back');
note sprintf 'the last viewer got its first new frame %.2f s after "up"',
             $latest;
is("@unordered", '', 'frames arrive in the order produced, each once');

my @warn = grep { /\[(?:warn|error)\]/ } @log;
my $outage_s = $up_at - $down_at;
note scalar(@warn) . " warnings and errors in a $outage_s s outage:\n"
     . join '', @warn[0 .. min($#warn, 40)];
cmp_ok(scalar @warn, '<=', 2 * 12,
       'a bounded number of warnings (the rate limit), not one per poll');
ok((grep { /no broker connected|brokers are down/ } @log) >= 1,
   'the outage is logged');
ok((grep { /broker\(s\) connected/ } @log) >= 1, 'the recovery is logged');
is(join('', grep { /\[(?:alert|crit|emerg)\]/ } @log), '',
   'no alert, crit or emerg');

ok(nginx_stop($ng), 'nginx stops');
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing;
