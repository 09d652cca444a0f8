#!/usr/bin/perl

# --slow M --slow-rate B: the first M viewers never read more than B bytes
# per second, while the others read what the server sends.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use Test::More;
use Time::HiRes qw(time sleep);

my $jpeg = media('jpeg', '160x120');
my $rate = 20000;
my $duration = 3;

# frames as fast as the viewer takes them (a little paced, to spare the
# CPU), until the viewer leaves or 20 s have passed

my $srv = serve(lifetime => 30, handler => sub {
    my ($sock) = @_;
    my $until = time() + 20;

    put($sock, response_head()) or return;

    while (time() < $until) {
        put($sock, part($jpeg, ts => time())) or return;
        sleep(0.001);
    }
});

my $csv = tmpdir() . '/slow.csv';
my $r = run_load('--json', '-c', '3', '--slow', '1', '--slow-rate', $rate,
                 '-d', $duration, '--per-viewer', $csv, $srv->{url});

is($r->{rc}, 0, 'exit 0') or diag($r->{err});
is($r->{json}{invalid_parts}, 0, 'no invalid part');
is($r->{json}{connections}{connected}, 3, '3 connected');
is($r->{json}{slow_viewers}, 1, '1 slow viewer');
is($r->{json}{fps_slow}{viewers}, 1, 'the slow viewer has a frame rate');
is($r->{json}{fps_normal}{viewers}, 2, 'two normal frame rates');

my @rows = read_csv($csv);
my ($slow, @normal) = @rows;
my $cap = $rate * $duration;

is($slow->{slow}, 1, 'viewer 0 is the slow one');
cmp_ok($slow->{bytes}, '<=', $cap + 4096,
       "slow viewer: at most $rate B/s x $duration s (+4 KiB)");
cmp_ok($slow->{bytes}, '>', $cap / 4,
       'slow viewer: it did read at its rate, not nothing');
cmp_ok($slow->{frames}, '>=', 1, 'slow viewer: got whole frames');

for my $n (@normal) {
    is($n->{slow}, 0, "viewer $n->{viewer} is a normal one");
    cmp_ok($n->{bytes}, '>', 2 * ($cap + 4096),
           "viewer $n->{viewer}: not held to the slow rate");
}

cmp_ok($r->{json}{fps_normal}{min}, '>', $r->{json}{fps_slow}{max},
       'the normal viewers got more frames per second than the slow one');

# a rate so low that not even the response header fits in the run

$r = run_load('--json', '--slow', '1', '--slow-rate', '10', '-d', '1',
              $srv->{url});

is($r->{rc}, 1, 'too slow for the header: exit 1');
is($r->{json}{connections}{failed}, 1, 'too slow for the header: failed');
cmp_ok($r->{json}{bytes}, '<=', 10 * 1 + 1, 'too slow: at most 10 B/s read');
like($r->{err}, qr/no response header before the end of the run/,
     'too slow: the reason');

stop_server($srv);

done_testing();
