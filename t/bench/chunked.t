#!/usr/bin/perl

# mjpeg-load on Transfer-Encoding: chunked bodies (chunks cut anywhere:
# in boundaries, headers and images), chunk extensions and trailers, broken
# chunk framing, and bodies that arrive a few bytes at a time.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Test::More;
use Time::HiRes qw(sleep);

my $png = media('png', '48x32');
my $jpeg = media('jpeg', '48x32');

my $parts = part($png, type => 'image/png', ts => 1764000000.5)
            . part($jpeg) . part($png, type => 'image/png') . part($jpeg)
            . final_boundary();
my $chead = response_head(chunked => 1);

my %cases = (
    'one-byte-chunks'  => [ $chead . chunked($parts, 1), 4, 0 ],
    'odd-chunks'       => [ $chead . chunked($parts, 3, 7, 1, 250), 4, 0 ],
    'one-chunk'        => [ $chead . chunked($parts, length($parts)), 4, 0 ],
    'boundary-split'   => [ $chead . chunked($parts, 2 + length($png) + 80,
                                             5, 20), 4, 0 ],
);

# chunk extensions and a trailer field

my $ext = $chead;
for my $piece (unpack('(a700)*', $parts)) {
    $ext .= sprintf("%X;name=\"v\"\r\n%s\r\n", length($piece), $piece);
}
$ext .= "0\r\nX-Trailer: 1\r\n\r\n";
$cases{'extensions'} = [ $ext, 4, 0 ];

# the last chunk comes without the final boundary: the stream broke off

(my $unended = $parts) =~ s/--frame--\r\n$//;
$cases{'no-final-boundary'} = [ $chead . chunked($unended, 100), 4, 1,
                                qr/body ended without the final boundary/ ];

# broken chunk framing in the middle of the second part

my $broken = $chead . chunked(substr($parts, 0, length($png) + 150), 64)
             . "zz\r\n";
$broken =~ s/0\r\n\r\nzz/zz/;
$cases{'bad-chunk-size'} = [ $broken, 1, 1, qr/bad chunk size/ ];

my $srv = serve(handler => sub {
    my ($sock, $n, $log, $req) = @_;
    my ($name) = $req =~ m{^GET /(\S+)};

    if ($name =~ /^dribble-(close|chunked)$/) {

        # a few bytes per write, so that the reads end anywhere

        setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
        my $body = $1 eq 'close' ? response_head() . $parts
                                 : $chead . chunked($parts, 333);
        my $i = 0;

        while (length($body) > 0) {
            put($sock, substr($body, 0, 1 + $i++ % 5, '')) or last;
            sleep(0.0002);
        }

        return;
    }

    put($sock, $cases{$name}[0]) if $cases{$name};
});

for my $name (sort keys %cases) {
    my ($body, $frames, $early, $msg) = @{ $cases{$name} };
    (my $url = $srv->{url}) =~ s{/stream$}{/$name};

    my $r = run_load('--json', '-d', '20', $url);

    is($r->{rc}, $early ? 1 : 0, "$name: exit " . ($early ? 1 : 0))
        or diag($r->{err});
    is($r->{json}{frames}, $frames, "$name: $frames frames");
    is($r->{json}{invalid_parts}, $name eq 'bad-chunk-size' ? 1 : 0,
       "$name: invalid parts");
    is($r->{json}{connections}{disconnected_early}, $early,
       "$name: disconnected early: $early");
    is($r->{json}{connections}{ended_by_server}, $early ? 0 : 1,
       "$name: ended by the server: " . ($early ? 0 : 1));
    like($r->{err}, $msg, "$name: the reason") if $msg;
    is($r->{json}{latency_ms}{samples}, 1, "$name: one X-Timestamp")
        if $frames == 4;
}

for my $name ('dribble-close', 'dribble-chunked') {
    (my $url = $srv->{url}) =~ s{/stream$}{/$name};

    my $r = run_load('--json', '-d', '60', $url);

    is($r->{rc}, 0, "$name: exit 0") or diag($r->{err});
    is($r->{json}{frames}, 4, "$name: 4 frames");
    is($r->{json}{invalid_parts}, 0, "$name: none invalid");
    is($r->{json}{connections}{ended_by_server}, 1, "$name: ended");
}

stop_server($srv);

done_testing();
