# Churn: 10,000 viewer connections come and go against 2 workers while
# frames flow at 25 fps (7,000 reading the latest frame, 1,000 staying
# for 3 live frames, 2,000 leaving in the middle of a 37 KB frame).  Afterwards no viewer is left over, each
# worker's RSS is within 5 % of where it was after a warm-up, and it holds
# no more descriptors than before.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use IPC::Run qw(start finish timeout);
use JSON::PP qw(decode_json);
use List::Util qw(sum);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:1'];
use Reliability;

my $slow = slow_factor();
# under valgrind a tenth of it: the point there is memcheck, not RSS
my $scale = $slow > 1 ? 10 : 1;

my @F = make_frames(50, format => 'png', size => '640x480');
ok(!grep({ length($_) < 32 * 1024 } @F),
   'the frames are over 32 KB: a viewer can leave mid-frame');

# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $ng = nginx_start(workers => 2,
                     http => stream_http('location /stream { kafka_stream cams; }',
                                         'kafka_stream_always_consume on;'));

ok(until_true(20 * $slow, sub { workers_have('partitions') }),
   'the workers consume');

my $feed = start_feed('cams', \@F, fps => 25);
ok(until_true(10 * $slow, sub { workers_have('frames_in', 5) }),
   'frames flow');

my @workers = worker_pids($ng);
my $url = 'http://127.0.0.1:' . port() . '/stream';
my $load = KafkaStream::Test::tool('mjpeg-load');

# runs mjpeg-load runs side by side; returns their JSON summaries
sub churn {
    my (@runs) = @_;
    my @h;

    for my $args (@runs) {
        my $r = { out => '', err => '' };
        $r->{h} = start([$load, '--json', '-d', 300, @$args, $url],
                        \undef, \$r->{out}, \$r->{err},
                        timeout(600 * $slow));
        push @h, $r;
    }

    for my $r (@h) {
        eval { finish($r->{h}) };
        $r->{rc} = $r->{h}->full_result >> 8;
        $r->{json} = eval { decode_json($r->{out}) } // {};
    }

    return @h;
}

sub rss { sum(map { rss_kb($_) // 0 } @workers) }
sub fds { sum(map { fd_count($_) // 0 } @workers) }

# RSS moves a little with what librdkafka holds at the moment: the median
# of a few readings a moment apart
sub rss_now {
    my @r;
    for (1 .. 5) { push @r, rss(); sleep 0.2 }
    return (sort { $a <=> $b } @r)[2];
}

sub settled {
    return until_true(10 * $slow, sub { watching() == 0 });
}

# warm-up, as many at once as in the churn: pools, buffers and
# librdkafka's queues reach their size (measured: after that, RSS stays
# flat over 80,000 more cycles)
churn(['-c', 100, '--cycles', 10 / $scale],
      ['-c', 50, '--cycles', 2 / $scale, '--max-frames', 3],
      ['-c', 50, '--cycles', 5 / $scale, '--abort-mid-frame']);
ok(settled(), 'warm-up over: no viewer left');
my $rss0 = rss_now();
my $fds0 = fds();

my $t0 = time;
my ($latest, $live, $aborting) =
    churn(['-c', 100, '--cycles', 70 / $scale],
          ['-c', 50, '--cycles', 20 / $scale, '--max-frames', 3],
          ['-c', 50, '--cycles', 40 / $scale, '--abort-mid-frame']);
my $took = time - $t0;

my $n_abort = 2000 / $scale;

for my $run ([$latest, 'the latest frame', 7000 / $scale, 1],
             [$live, '3 live frames', 1000 / $scale, 3])
{
    my ($r, $what, $n, $frames) = @$run;
    is($r->{rc}, 0, "$what: exit 0") or diag($r->{err});
    is($r->{json}{connections}{attempted}, $n, "$what: $n connections");
    is($r->{json}{connections}{connected}, $n, "$what: each got the stream");
    is($r->{json}{connections}{closed_after_max_frames}, $n,
       "$what: each read its frames and left");
    is($r->{json}{frames}, $n * $frames, "$what: " . $n * $frames
                                         . ' frames');
    is($r->{json}{invalid_parts}, 0, "$what: no invalid part");
}

is($aborting->{rc}, 0, 'the aborting viewers: exit 0')
    or diag($aborting->{err});
is($aborting->{json}{connections}{attempted}, $n_abort,
   "$n_abort connections that leave mid-frame");
cmp_ok($aborting->{json}{connections}{aborted_mid_frame}, '>=', $n_abort * 0.9,
       "most left in the middle of a frame "
       . "($aborting->{json}{connections}{aborted_mid_frame})");

note sprintf '10,000 connections in %.1f s', $took;

ok(settled(), 'no viewer is left over');
ok(until_true(10, sub { fds() <= $fds0 }),
   'no descriptor left over (' . fds() . " now, $fds0 before)");

my $rss1 = rss_now();
note "workers' RSS: $rss0 kB after the warm-up, $rss1 kB after the churn";
SKIP: {
    skip "RSS under ASan (its quarantine keeps freed memory; LeakSanitizer"
         . " checks leaks)", 1 if sanitized();
    cmp_ok(abs($rss1 - $rss0), '<=', $rss0 * 0.05,
           "RSS within 5 % of the start ($rss0 -> $rss1 kB)");
}

# the stream still works
my $rep = start_viewers(n => 3, uri => '/stream', frames => \@F);
sleep 1;
$rep = stop_viewers($rep);
ok(!grep({ @{$_->{conns}[0]{parts}} < 5 } @$rep),
   'afterwards viewers get frames as before');

stop_feed($feed);
is("@{[worker_pids($ng)]}", "@workers", 'the same workers all along');
my @log = log_lines($ng, 0);
is(join('', grep { /\[(?:alert|crit|emerg)\]|exited on signal/ } @log), '',
   'no alert, crit or emerg');

ok(nginx_stop($ng), 'nginx stops');
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing;
