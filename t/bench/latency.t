#!/usr/bin/perl

# Latency is the receive time minus X-Timestamp: a server that stamps its
# frames 1 s in the past must show about 1000 ms, one that stamps them
# with the time of sending about 0 ms.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use Test::More;
use Time::HiRes qw(time sleep);

my $jpeg = media('jpeg');

# /stream/AGE: 5 frames stamped AGE seconds before they are sent

my $srv = serve(handler => sub {
    my ($sock, $n, $log, $req) = @_;
    my ($age) = $req =~ m{^GET /stream/(-?[\d.]+)};

    put($sock, response_head()) or return;

    for (1 .. 5) {
        put($sock, part($jpeg, ts => time() - $age)) or return;
        sleep(0.02);
    }

    put($sock, final_boundary());
});

my $csv = tmpdir() . '/latency.csv';
my $r = run_load('--json', '-c', '2', '-d', '20', '--per-viewer', $csv,
                 "$srv->{url}/1.0");

is($r->{rc}, 0, '1 s old: exit 0') or diag($r->{err});
is($r->{json}{frames}, 10, '1 s old: 10 frames');

my $lat = $r->{json}{latency_ms};
is($lat->{samples}, 10, '1 s old: 10 latency samples');
cmp_ok($lat->{p50}, '>=', 800, '1 s old: p50 >= 800 ms');
cmp_ok($lat->{p50}, '<=', 1200, '1 s old: p50 <= 1200 ms');
cmp_ok($lat->{p99}, '>=', $lat->{p50}, '1 s old: p99 >= p50');
cmp_ok($lat->{max}, '>=', $lat->{p99}, '1 s old: max >= p99');
cmp_ok($lat->{max}, '<=', 1200, '1 s old: max <= 1200 ms');
is($lat->{negative}, 0, '1 s old: none negative');
is($r->{json}{frames_without_timestamp}, 0, '1 s old: all stamped');

for my $row (read_csv($csv)) {
    cmp_ok($row->{latency_avg_ms}, '>=', 800, "csv viewer $row->{viewer}: "
           . "average latency >= 800 ms");
    cmp_ok($row->{latency_avg_ms}, '<=', 1200, "csv viewer $row->{viewer}: "
           . "average latency <= 1200 ms");
}

$r = run_load('--json', '-d', '20', "$srv->{url}/0");

is($r->{rc}, 0, 'fresh: exit 0');
cmp_ok($r->{json}{latency_ms}{p50}, '<', 200, 'fresh: p50 < 200 ms');
cmp_ok($r->{json}{latency_ms}{max}, '>=', 0, 'fresh: max >= 0');

# stamped 5 s in the future (a skewed producer clock): counted as such

$r = run_load('--json', '-d', '20', "$srv->{url}/-5");

is($r->{rc}, 0, 'future: exit 0');
is($r->{json}{latency_ms}{negative}, 5, 'future: 5 negative latencies');
cmp_ok($r->{json}{latency_ms}{max}, '<', -4000, 'future: max < -4000 ms');

stop_server($srv);

done_testing();
