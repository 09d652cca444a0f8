#!/usr/bin/perl

# mjpeg-load must count broken parts as invalid (and exit 1), and go on
# with the parts after them: truncated parts, lying Content-Lengths,
# corrupt PNGs, JPEGs without their markers.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use IO::Select;
use Test::More;

my $png = media('png');
my $jpeg = media('jpeg');

my $P = sub { part($_[0], type => 'image/png', @_[1 .. $#_]) };
my $J = sub { part($_[0], type => 'image/jpeg', @_[1 .. $#_]) };
my $head = response_head();
my $end = final_boundary();


# the offset of the n-th chunk (0: IHDR) of a PNG

sub chunk_at {
    my ($data, $n) = @_;

    my $off = 8;

    while ($n-- > 0) {
        $off += 12 + unpack('N', substr($data, $off, 4));
    }

    return $off;
}

my $second = chunk_at($png, 1);
my $second_len = unpack('N', substr($png, $second, 4));

my $huge_len = $png;
substr($huge_len, $second, 4) = pack('N', 0x7ffffff0);

my $off_by_one = $png;
substr($off_by_one, $second, 4) = pack('N', $second_len + 1);

my $bad_crc = $png;
substr($bad_crc, $second + 8, 1) = chr(ord(substr($png, $second + 8, 1)) ^ 1);

my $no_iend = substr($png, 0, length($png) - 12);
is(substr($png, -8, 4), 'IEND', 'the PNG ends with IEND');

my $bad_sig = "\x88" . substr($png, 1);
my $no_eoi = substr($jpeg, 0, length($jpeg) - 2);
my $no_soi = "\xff\xd9" . substr($jpeg, 2);

my $half_part = $J->($jpeg);
$half_part = substr($half_part, 0, length($half_part) / 2);

my $good = $J->($jpeg);

# name => [ body, valid frames, invalid parts, stderr pattern, early ]

my %cases = (
    'closed-mid-part' =>
        [ $head . $good . $good . $half_part, 2, 1,
          qr/truncated: the stream ended inside a part/, 1 ],
    'closed-in-headers' =>
        [ $head . $good . "--frame\r\nContent-Type: ima", 1, 1,
          qr/ended inside a part's headers/, 1 ],
    'closed-at-boundary' =>
        [ $head . $good . "--frame\r\n", 1, 0,
          qr/connection closed by the server\n/, 1 ],
    'closed-after-part' =>
        [ $head . $good . $good, 2, 0,
          qr/connection closed by the server\n/, 1 ],
    'length-short' =>
        [ $head . $good . $J->($jpeg, length => length($jpeg) - 10)
          . $good . $good . $end, 3, 1,
          qr/Content-Length does not match/, 0 ],
    'length-long' =>
        [ $head . $good . $J->($jpeg, length => length($jpeg) + 10)
          . $good . $good . $end, 2, 1,
          qr/Content-Length does not match/, 0 ],
    'length-missing' =>
        [ $head . $good . "--frame\r\nContent-Type: image/jpeg\r\n\r\n"
          . $jpeg . "\r\n" . $good . $end, 2, 1,
          qr/no valid Content-Length/, 0 ],
    'png-huge-chunk-length' =>
        [ $head . $P->($png) . $P->($huge_len) . $P->($png) . $end, 2, 1,
          qr/PNG: chunk \w{4} length 2147483632 runs past the part/, 0 ],
    'png-chunk-length-off-by-one' =>
        [ $head . $P->($off_by_one) . $end, 0, 1, qr/PNG: /, 0 ],
    'png-bad-crc' =>
        [ $head . $P->($bad_crc) . $P->($png) . $end, 1, 1,
          qr/PNG: CRC mismatch/, 0 ],
    'png-no-iend' =>
        [ $head . $P->($png) . $P->($no_iend) . $end, 1, 1,
          qr/PNG: no IEND chunk/, 0 ],
    'png-bad-signature' =>
        [ $head . $P->($bad_sig) . $end, 0, 1, qr/PNG: bad signature/, 0 ],
    'png-data-after-iend' =>
        [ $head . $P->($png . "xx") . $end, 0, 1,
          qr/PNG: data after the IEND chunk/, 0 ],
    'jpeg-no-eoi' =>
        [ $head . $J->($no_eoi) . $good . $end, 1, 1,
          qr/JPEG: does not end with EOI/, 0 ],
    'jpeg-no-soi' =>
        [ $head . $J->($no_soi) . $end, 0, 1,
          qr/JPEG: does not start with SOI/, 0 ],
    'png-labelled-jpeg' =>
        [ $head . $J->($png) . $end, 0, 1, qr/JPEG: does not start/, 0 ],
    'other-type' =>
        [ $head . $P->($png, type => 'text/plain') . $good . $end, 1, 1,
          qr/neither image\/jpeg nor image\/png/, 0 ],

    'other-boundary' =>
        [ $head . $P->($png, boundary => 'other') . final_boundary('other'),
          0, 1, qr/no boundary in \d+ bytes of body/, 1 ],

    # the same valid parts with nothing wrong: exit 0, so the cases above
    # fail because of their broken part, not because of the harness

    'control' =>
        [ $head . $P->($png) . $good . $end, 2, 0, qr/^$/, 0 ],
);

my $srv = serve(handler => sub {
    my ($sock, $n, $log, $req) = @_;
    my ($name) = $req =~ m{^GET /(\S+)};

    if ($name eq 'no-boundary-until-run-over') {

        # parts with another boundary, until the viewer leaves

        put($sock, $head) or return;
        put($sock, $P->($png, boundary => 'other')) or return for 1 .. 1000;
        IO::Select->new($sock)->can_read(20);
        return;
    }

    put($sock, $cases{$name}[0]) if defined $name && $cases{$name};
});

for my $name (sort keys %cases) {
    my ($body, $frames, $invalid, $msg, $early) = @{ $cases{$name} };
    (my $url = $srv->{url}) =~ s{/stream$}{/$name};

    my $r = run_load('--json', '-d', '20', $url);

    my $rc = ($invalid || $early) ? 1 : 0;

    is($r->{rc}, $rc, "$name: exit $rc");
    is($r->{json}{frames}, $frames, "$name: $frames valid frames");
    is($r->{json}{invalid_parts}, $invalid, "$name: $invalid invalid");
    like($r->{err}, $msg, "$name: the reason");
    is($r->{json}{connections}{disconnected_early}, $early,
       "$name: disconnected early: $early");
    is($r->{json}{bytes}, length($body), "$name: all bytes read");
}

# the viewer leaves at the end of the run; it never saw a boundary

(my $url = $srv->{url}) =~ s{/stream$}{/no-boundary-until-run-over};
my $r = run_load('--json', '-d', '1', $url);

is($r->{rc}, 1, 'no boundary until the run is over: exit 1');
is($r->{json}{invalid_parts}, 1, 'no boundary until the run is over: invalid');
is($r->{json}{connections}{disconnected_early}, 0,
   'no boundary until the run is over: not disconnected early');
like($r->{err}, qr/no boundary in \d+ bytes of body/,
     'no boundary until the run is over: the reason');

stop_server($srv);

done_testing();
