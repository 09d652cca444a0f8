#!/usr/bin/perl

# 2,000 viewers at once in one process: mjpeg-load, started with a soft
# descriptor limit of 1024, must raise it itself.  The server holds every
# connection until all 2,000 are open, so they really are open together,
# then answers each with two frames and the final boundary.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(time);

my $n = 2000;

chomp(my $hard = `sh -c 'ulimit -Hn'`);
plan(skip_all => "the hard descriptor limit ($hard) is below 2 x $n")
    if $hard ne 'unlimited' && $hard < 2 * $n + 100;

# this process (and so the server forked from it) needs the descriptors

my $limit = $hard eq 'unlimited' ? 2 * $n + 100 : $hard;
system('prlimit', "--pid=$$", "--nofile=$limit:$limit") == 0
    or BAIL_OUT('prlimit failed');

my $jpeg = media('jpeg');
my $body = response_head() . part($jpeg) . part($jpeg) . final_boundary();

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', Listen => 4096,
                                   ReuseAddr => 1)
    or die "listen: $!\n";
my $port = $listen->sockport;
my $log = tmpdir() . '/many.log';

my $pid = fork() // die "fork: $!\n";

if ($pid == 0) {
    my @held;
    my $sel = IO::Select->new($listen);
    my $deadline = time() + 60;

    while (@held < $n && time() < $deadline) {
        next unless $sel->can_read(0.5);
        my $sock = $listen->accept() or next;
        push(@held, $sock);
    }

    open(my $fh, '>', $log) or _exit(1);
    print $fh "held " . scalar(@held) . "\n";
    close($fh);

    $SIG{PIPE} = 'IGNORE';

    for my $sock (@held) {
        put($sock, $body);
        close($sock);
    }

    _exit(0);
}

close($listen);

my @cmd = ('prlimit', '--nofile=1024:' . $limit, '--', load_bin());
my $r = BenchLoad::run_cmd([ @cmd, '--json', '-c', $n, '--ramp', '4000',
                             '-d', '60', "http://127.0.0.1:$port/many" ]);

is($r->{rc}, 0, "$n viewers: exit 0") or diag(substr($r->{err}, 0, 2000));
is($r->{json}{connections}{connected}, $n, "$n viewers: all connected");
is($r->{json}{connections}{ended_by_server}, $n, "$n viewers: all ended");
is($r->{json}{frames}, 2 * $n, "$n viewers: 2 frames each");
is($r->{json}{invalid_parts}, 0, "$n viewers: none invalid");
is($r->{json}{bytes}, $n * length($body), "$n viewers: every byte");

waitpid($pid, 0);

open(my $fh, '<', $log) or die "$log: $!\n";
is(scalar(<$fh>), "held $n\n", "the server held $n connections at once");
close($fh);

done_testing();
