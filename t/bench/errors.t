#!/usr/bin/perl

# Connections that fail or break off (exit 1, counted, with the reason)
# and usage errors (exit 2).

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;

my $jpeg = media('jpeg');

my %cases = (
    'status-404' =>
        [ "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
          qr/HTTP status 404/ ],
    'not-multipart' =>
        [ response_head(content_type => 'text/html') . "<html>",
          qr/Content-Type is not multipart\/x-mixed-replace/ ],
    'no-boundary' =>
        [ response_head(content_type => 'multipart/x-mixed-replace'),
          qr/no usable boundary/ ],
    'no-content-type' =>
        [ "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
          qr/no Content-Type in the response/ ],
    'not-http' =>
        [ "hello there\r\n\r\n", qr/not an HTTP\/1\.x response/ ],
    'gzip' =>
        [ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
          . "Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n",
          qr/unsupported Transfer-Encoding/ ],
    'huge-header' =>
        [ "HTTP/1.1 200 OK\r\nX-Big: " . ('x' x 9000) . "\r\n\r\n",
          qr/response header too long/ ],
    'closed' =>
        [ '', qr/closed by the server before the response header/ ],
);

my $srv = serve(handler => sub {
    my ($sock, $n, $log, $req) = @_;
    my ($name) = $req =~ m{^GET /(\S+)};

    if ($name eq 'silent') {

        # say nothing until the viewer leaves

        IO::Select->new($sock)->can_read(30);
        return;
    }

    if ($name eq 'reset') {

        # a part and a half, then an RST instead of a FIN; the viewer
        # still reads what came before the RST

        put($sock, response_head() . part($jpeg)
                   . substr(part($jpeg), 0, 100));
        setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        return;
    }

    put($sock, $cases{$name}[0]);
});

for my $name (sort keys %cases) {
    (my $url = $srv->{url}) =~ s{/stream$}{/$name};
    my $csv = tmpdir() . "/$name.csv";

    my $r = run_load('--json', '-d', '20', '--per-viewer', $csv, $url);

    is($r->{rc}, 1, "$name: exit 1");
    is($r->{json}{connections}{failed}, 1, "$name: failed");
    is($r->{json}{connections}{connected}, 0, "$name: not connected");
    like($r->{err}, $cases{$name}[1], "$name: the reason");

    my ($row) = read_csv($csv);
    like($row->{error}, $cases{$name}[1], "$name: the reason in the CSV");
}

my ($row) = read_csv(tmpdir() . '/status-404.csv');
is($row->{http_status}, 404, 'status-404: the status in the CSV');

(my $url = $srv->{url}) =~ s{/stream$}{/silent};
my $r = run_load('--json', '-c', '2', '-d', '1', $url);

is($r->{rc}, 1, 'silent server: exit 1');
is($r->{json}{connections}{failed}, 2, 'silent server: 2 failed');
like($r->{err}, qr/no response header before the end of the run/,
     'silent server: the reason');

($url = $srv->{url}) =~ s{/stream$}{/reset};
$r = run_load('--json', '-d', '20', $url);

is($r->{rc}, 1, 'reset: exit 1');
is($r->{json}{connections}{connected}, 1, 'reset: it had connected');
is($r->{json}{connections}{disconnected_early}, 1,
   'reset: disconnected early');
is($r->{json}{frames}, 1, 'reset: the whole part before it counted');
is($r->{json}{invalid_parts}, 1, 'reset: the cut part is invalid');
like($r->{err}, qr/recv: Connection reset by peer/, 'reset: the reason');

stop_server($srv);


# a ramp slower than the run: two viewers never start

my $short = serve(body => response_head() . part($jpeg) . final_boundary());

$r = run_load('--json', '-c', '3', '--ramp', '1', '-d', '0.5',
              $short->{url});

is($r->{rc}, 1, 'ramp longer than the run: exit 1');
is($r->{json}{connections}{attempted}, 1, 'ramp: one viewer started');
is($r->{json}{connections}{not_started}, 2, 'ramp: two never started');
is($r->{json}{frames}, 1, 'ramp: the one started got its frame');
like($r->{err}, qr/warning: the ramp takes 2\.0 s/, 'ramp: a warning');

stop_server($short);


# nobody listens: a port that was just free

my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die "listen: $!\n";
my $free = $probe->sockport;
close($probe);

$r = run_load('--json', '-c', '3', '-d', '20', "http://127.0.0.1:$free/");

is($r->{rc}, 1, 'refused: exit 1');
is($r->{json}{connections}{failed}, 3, 'refused: 3 failed');
like($r->{err}, qr/connect: Connection refused/, 'refused: the reason');

$r = run_load('--json', '-c', '2', '--cycles', '3', '-d', '20',
              "http://127.0.0.1:$free/");

is($r->{rc}, 1, 'refused, 3 cycles: exit 1');
is($r->{json}{connections}{attempted}, 6, 'refused, 3 cycles: 6 attempts');
is($r->{json}{connections}{failed}, 6, 'refused, 3 cycles: 6 failed');


# usage

my @usage = (
    [ [], 'no URL' ],
    [ [ 'http://a/', 'http://b/' ], 'two URLs' ],
    [ [ '--bogus', 'http://a/' ], 'unknown option' ],
    [ [ 'https://a/' ], 'https' ],
    [ [ 'http://a:0/' ], 'port 0' ],
    [ [ 'http://a:99999/' ], 'port too large' ],
    [ [ 'http://:80/' ], 'no host' ],
    [ [ 'http://[::1/' ], 'unclosed IPv6 address' ],
    [ [ '-c', '0', 'http://a/' ], 'no viewers' ],
    [ [ '-c', 'x', 'http://a/' ], 'viewers not a number' ],
    [ [ '-d', '0', 'http://a/' ], 'duration 0' ],
    [ [ '-c', '2', '--slow', '3', '--slow-rate', '9', 'http://a/' ],
      'more slow viewers than viewers' ],
    [ [ '--slow', '1', 'http://a/' ], '--slow without --slow-rate' ],
    [ [ '--ramp', '5', '--ramp-time', '2', 'http://a/' ],
      '--ramp and --ramp-time' ],
    [ [ '--max-frames', '0', 'http://a/' ], '--max-frames 0' ],
    [ [ '--cycles', '-1', 'http://a/' ], '--cycles -1' ],
);

for my $u (@usage) {
    my ($args, $what) = @$u;
    $r = run_load(@$args);

    is($r->{rc}, 2, "usage: $what: exit 2");
    like($r->{err}, qr/mjpeg-load|usage/, "usage: $what: a message");
    is($r->{out}, '', "usage: $what: nothing on stdout");
}

$r = run_load('-h');
is($r->{rc}, 0, '-h: exit 0');
like($r->{out}, qr/^usage: mjpeg-load/, '-h: usage on stdout');
like($r->{out}, qr/--abort-mid-frame/, '-h: lists the options');

done_testing();
