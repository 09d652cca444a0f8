# "nginx -s reload" ten times in a row while 200 viewers stream and frames
# flow: every old worker exits within 1 s of its reload, the streams it
# had end with the closing boundary, the viewers (reconnecting as a page
# would) are served by the new workers, and nothing is logged at alert
# or crit.  Then "nginx -s quit" with 200 viewers attached: nginx is gone
# within 1 s.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use List::Util qw(max);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:1'];
use Reliability;

my $Viewers = 200;
my $Reloads = 10;
my $slow = slow_factor();

my @F = make_frames(600, format => 'png', size => '64x48');

# every worker reads the topic from its start, viewers or not (the
# fleet's partitions that follow their viewers: t/fleet/)
my $ng = nginx_start(workers => 2,
                     http => stream_http('location /stream { kafka_stream cams; }',
                                         'kafka_stream_always_consume on;'));

sub sent { status_sum('parts_sent') }

ok(until_true(20 * $slow, sub { workers_have('partitions') }),
   'the workers consume');

my $feed = start_feed('cams', \@F, fps => 10);
my $pool = start_viewers(n => $Viewers, uri => '/stream', frames => \@F,
                         reconnect => 1);

my (@slow_exit, @no_new, @reload_at, @exit_s, @not_watched, @not_flowing);

for my $i (1 .. $Reloads) {
    # all viewers are back, on the current workers, before each reload
    push @not_watched, "before reload $i: " . watching()
        if !until_true(15 * $slow, sub { watching() == $Viewers });

    # and frames are on their way to them when it comes
    my $s0 = sent();
    push @not_flowing, "before reload $i"
        if !until_true(10 * $slow, sub { sent() >= $s0 + 2 * $Viewers });

    my @old = worker_pids($ng);
    my $t0 = time;
    push @reload_at, $t0;
    nginx_command($ng, 'reload');

    my %exit;
    until_true(10 * $slow, sub {
        for my $pid (grep { !$exit{$_} } @old) {
            $exit{$pid} = time if exited($pid);
        }
        return keys %exit == @old;
    }, 0.005);

    for my $pid (@old) {
        my $s = defined $exit{$pid} ? $exit{$pid} - $t0 : 99;
        push @exit_s, $s;
        push @slow_exit, sprintf('reload %d: worker %d after %.2f s',
                                 $i, $pid, $s)
            if $s > 1 * $slow;
    }

    my %old = map { $_ => 1 } @old;
    push @no_new, "reload $i"
        if !until_true(10 * $slow, sub {
               my @now = worker_pids($ng);
               @now == 2 && !grep { $old{$_} } @now;
           });
}

is("@slow_exit", '', "every old worker exited within 1 s of its reload");
note sprintf 'old workers exited %.2f .. %.2f s after "nginx -s reload"',
             (sort { $a <=> $b } @exit_s)[0], max(@exit_s);
is("@no_new", '', 'new workers replaced the old ones each time');

# the new workers serve: all viewers back, frames still arriving
ok(until_true(15 * $slow, sub { watching() == $Viewers }),
   "the new workers have the $Viewers viewers")
    or diag("@not_watched");
is("@not_watched", '', 'all viewers were back before every reload');
is("@not_flowing", '', 'and frames flowed to them');
sleep 1.5;
my $rep = stop_viewers($pool);
my $last_reload = $reload_at[-1];

my (@errors, @cut_mid, @no_frames_at_end, @no_closing);
my $conns = 0;

for my $v (@$rep) {
    my @c = @{$v->{conns}};
    $conns += @c;

    for my $k (0 .. $#c) {
        my $c = $c[$k];
        push @errors, "$v->{id}/$k: $c->{error}" if $c->{error};
        push @cut_mid, "$v->{id}/$k" if $c->{mid} && !$c->{cut};
        push @no_closing, "$v->{id}/$k" if !$c->{cut} && !$c->{closing};
    }

    # the connection open at the end got frames from the new workers
    push @no_frames_at_end, $v->{id}
        if !grep { $_->[0] > $last_reload + 0.5 } @{$c[-1]{parts}};
}

cmp_ok($conns, '>=', $Viewers * 2, "the viewers reconnected ($conns "
                                   . "connections)");
is(join(' ', @errors[0 .. ($#errors > 9 ? 9 : $#errors)]), '',
   'no connection failed or carried a broken part');
is(scalar @no_closing, 0, 'every stream an old worker ended got the '
                          . 'closing boundary')
    or diag("@no_closing[0 .. ($#no_closing > 20 ? 20 : $#no_closing)]");
is(scalar @cut_mid, 0, 'no stream was cut in the middle of a frame');
is("@no_frames_at_end", '', 'every viewer gets frames from the new workers');

my @log = log_lines($ng, 0);
is(join('', grep { /\[(?:alert|crit|emerg)\]/ } @log), '',
   'no alert, crit or emerg in the log');

# quit with viewers attached
$pool = start_viewers(n => $Viewers, uri => '/stream', frames => \@F);
ok(until_true(15 * $slow, sub { watching() == $Viewers }),
   "$Viewers viewers before the quit");

my $master = $ng->{master};
my @workers = worker_pids($ng);
my $t0 = time;
nginx_command($ng, 'quit');
ok(until_true(10 * $slow, sub { exited($master) }, 0.005),
   'nginx quits');
my $took = time - $t0;
cmp_ok($took, '<=', 1 * $slow, sprintf('within 1 s (%.2f s)', $took));
ok(!grep({ !exited($_) } @workers), 'and its workers');

$rep = stop_viewers($pool);
my @open = grep { !$_->{conns}[0]{end} || $_->{conns}[0]{cut} } @$rep;
is(scalar @open, 0, 'every viewer saw its stream end');
my @closed = grep { $_->{conns}[0]{closing} } @$rep;
is(scalar @closed, $Viewers, 'with the closing boundary');

stop_feed($feed);
@log = log_lines($ng, 0);
is(join('', grep { /\[(?:alert|crit|emerg)\]/ } @log), '',
   'no alert, crit or emerg after the quit');

nginx_stop($ng);
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing;
