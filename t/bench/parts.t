#!/usr/bin/perl

# mjpeg-load on valid streams: real PNG and JPEG frames from ffmpeg,
# close-delimited, ended by the final boundary; frame counts, bytes,
# --expect-frames, --max-frames, several viewers, --verbose, CSV.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use Test::More;

my $png = media('png');
my $jpeg = media('jpeg', '160x120');

ok(length($png) > 100 && substr($png, 0, 8) eq "\x89PNG\r\n\x1a\n",
   'ffmpeg made a PNG');
ok(length($jpeg) > 100 && substr($jpeg, 0, 2) eq "\xff\xd8",
   'ffmpeg made a JPEG');


# 5 PNG frames, then the final boundary

my $body = response_head()
           . join('', map { part($png, type => 'image/png') } 1 .. 5)
           . final_boundary();
my $srv = serve(body => $body);

my $r = run_load('--json', '-d', '20', $srv->{url});

is($r->{rc}, 0, 'png: exit 0') or diag($r->{err});
is($r->{json}{frames}, 5, 'png: 5 frames');
is($r->{json}{invalid_parts}, 0, 'png: no invalid part');
is($r->{json}{bytes}, length($body), 'png: every byte of the response read');
is($r->{json}{connections}{connected}, 1, 'png: connected');
is($r->{json}{connections}{ended_by_server}, 1, 'png: ended by the server');
is($r->{json}{frames_without_timestamp}, 5, 'png: no X-Timestamp counted');
is($r->{json}{latency_ms}, undef, 'png: no latency without X-Timestamp');
ok($r->{json}{first_frame_ms}{samples} == 1, 'png: a first-frame time');
is((server_log($srv))[0], 'request 1 GET /stream HTTP/1.1',
   'the request line');
stop_server($srv);


# the module's own end: the boundary after the last frame opens a part at
# once, and the final boundary follows it with nothing in between (an
# empty part): a normal end, not an invalid part; a part with no headers
# but bytes is one

$body = response_head()
        . join('', map { part($png, type => 'image/png') } 1 .. 3)
        . "--frame\r\n\r\n" . final_boundary();
$srv = serve(body => $body);
$r = run_load('--json', '-d', '20', $srv->{url});

is($r->{rc}, 0, 'empty last part: exit 0') or diag($r->{err});
is($r->{json}{frames}, 3, 'empty last part: 3 frames');
is($r->{json}{invalid_parts}, 0, 'empty last part: not an invalid part');
is($r->{json}{connections}{ended_by_server}, 1,
   'empty last part: ended by the server');
stop_server($srv);

$body = response_head() . part($png, type => 'image/png')
        . "--frame\r\n\r\nno headers\r\n" . final_boundary();
$srv = serve(body => $body);
$r = run_load('--json', '-v', '-d', '20', $srv->{url});

is($r->{json}{frames}, 1, 'headerless part: the frame before it counted');
is($r->{json}{invalid_parts}, 1, 'headerless part: invalid');
like($r->{err}, qr/a part without headers/, 'headerless part: the reason');
stop_server($srv);


# JPEG, three viewers, the boundary quoted, and --expect-frames

$body = response_head(content_type =>
                      'multipart/x-mixed-replace;boundary="jpg bound"')
        . join('', map { part($jpeg, boundary => 'jpg bound') } 1 .. 7)
        . final_boundary('jpg bound');
$srv = serve(body => $body);

my $csv = tmpdir() . '/viewers.csv';
$r = run_load('--json', '-c', '3', '-d', '20', '--expect-frames', '7',
              '--per-viewer', $csv, $srv->{url});

is($r->{rc}, 0, 'jpeg: exit 0') or diag($r->{err});
is($r->{json}{frames}, 21, 'jpeg: 3 viewers x 7 frames');
is($r->{json}{invalid_parts}, 0, 'jpeg: no invalid part');
is($r->{json}{viewers_below_expected}, 0, 'jpeg: --expect-frames 7 met');
is($r->{json}{fps_normal}{viewers}, 3, 'jpeg: frame rates of 3 viewers');

my @rows = read_csv($csv);
is(scalar(@rows), 3, 'csv: one line per viewer');
is_deeply([map { $_->{frames} } @rows], [7, 7, 7], 'csv: frames per viewer');
is_deeply([map { $_->{bytes} } @rows], [(length($body)) x 3],
          'csv: bytes per viewer');
is_deeply([map { $_->{http_status} } @rows], [200, 200, 200],
          'csv: status');

# one more frame expected than served: exit 1

$r = run_load('--json', '-c', '2', '-d', '20', '--expect-frames', '8',
              $srv->{url});

is($r->{rc}, 1, 'expect-frames 8 of 7: exit 1');
is($r->{json}{viewers_below_expected}, 2, 'expect-frames: 2 viewers below');
is($r->{json}{frames}, 14, 'expect-frames: the frames still counted');

# --max-frames: leave after 3 of the 7

$r = run_load('--json', '-d', '20', '--max-frames', '3', $srv->{url});

is($r->{rc}, 0, 'max-frames: exit 0') or diag($r->{err});
is($r->{json}{frames}, 3, 'max-frames: 3 frames');
is($r->{json}{connections}{closed_after_max_frames}, 1,
   'max-frames: closed by the client');
is($r->{json}{connections}{ended_by_server}, 0, 'max-frames: not ended');

# the text summary and --verbose

$r = run_load('-v', '-d', '20', '--max-frames', '1', $srv->{url});

is($r->{rc}, 0, 'verbose: exit 0');
like($r->{err}, qr{viewer 0: response: HTTP/1\.1 200 OK},
     'verbose: the status line');
like($r->{err}, qr{viewer 0: part 0: Content-Length: ${\ length($jpeg)}},
     'verbose: the part headers');
like($r->{out}, qr{^frames\s+1 valid, 0 invalid}m, 'text: frames');
like($r->{out}, qr{^result\s+ok$}m, 'text: result ok');
stop_server($srv);


# a preamble before the first boundary, padding after a boundary, PNG and
# JPEG mixed, an unrelated header, and a response with a Content-Length

my $mixed = "preamble\r\n"
            . part($png, type => 'image/png', headers => "X-Other: 1\r\n")
            . part($jpeg)
            . final_boundary();
$mixed =~ s/--frame\r\n(Content-Type: image\/jpeg)/--frame  \r\n$1/;

$body = "HTTP/1.1 200 OK\r\n"
        . "Content-Type: Multipart/X-Mixed-Replace; charset=x;"
        . " boundary=frame\r\n"
        . "Content-Length: " . length($mixed) . "\r\n\r\n" . $mixed;
$srv = serve(body => $body);

$r = run_load('--json', '-d', '20', $srv->{url});

is($r->{rc}, 0, 'mixed: exit 0') or diag($r->{err});
is($r->{json}{frames}, 2, 'mixed: 2 frames');
is($r->{json}{invalid_parts}, 0, 'mixed: none invalid');
is($r->{json}{connections}{ended_by_server}, 1, 'mixed: ended');
stop_server($srv);

done_testing();
