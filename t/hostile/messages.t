# Hostile messages: empty, 1 byte, random bytes, a PNG signature and
# garbage, a truncated JPEG, one over kafka_stream_max_frame_size, CR/LF
# and NUL in keys and header names and values, a key of 100 KB.  Each is
# skipped or served as the image it claims to be; no worker crashes;
# nothing of the keys or headers reaches a header line, the status JSON
# (which lists keys) stays valid JSON with every control byte escaped.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../fault";

use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(time sleep);

use KafkaStream::Test topics => ['cams:1'];
use Reliability;

my $slow = slow_factor();

my @P = make_frames(4, format => 'png', size => '64x48');
my @J = make_frames(2, format => 'jpeg', size => '64x48');
my ($big) = make_frames(1, format => 'png', size => '640x480');

srand 7;
my $random = "\0" . join '', map { chr int rand 256 } 1 .. 3000;
my $evil_key = "cam\r\nX-Evil: key\0\r\n\r\n<html>evil";
my $long_key = 'K' x 102400;
my @evil_headers = ("X-Evil" => "v\r\nSet-Cookie: evil=1\r\n\r\n",
                    "nul" => "\0\0\0",
                    "X\r\nInjected-Name: evil" => "1",
                    "Content-Type" => "text/html\r\n\r\n<b>evil</b>");

# [name, bytes, produce options, served?]
my @M = (
    ['a PNG',                     $P[0], [], 1],
    ['empty',                     '', [], 0],
    ['larger than the maximum',   $big, [], 0],
    ['1 byte',                    "\x89", [], 0],
    ['random bytes',              $random, [], 0],
    ['PNG signature, garbage',    substr($P[1], 0, 33) . substr($random, 1, 500),
                                  [], 0],
    ['PNG signature, garbage, IEND', substr($P[1], 0, 33)
                                  . substr($random, 1, 500) . substr($P[1], -12),
                                  [], 1],
    ['truncated JPEG',            substr($J[0], 0, length($J[0]) - 100), [], 0],
    ['SOI and EOI only',          "\xff\xd8\xff\xd9", [], 1],
    ['CR, LF, NUL in key and headers', $P[1],
                                  [key => $evil_key, headers => \@evil_headers],
                                  1],
    ['a key of 100 KB',           $P[2], [key => $long_key], 1],
    ['a key of CR LF',            $J[1], [key => "\r\n"], 1],
    ['a PNG at the end',          $P[3], [], 1],
);

ok(length $big > 20 * 1024, 'the big frame is over 20k (' . length($big)
                            . ' bytes)');

# every worker reads the topic from its start (what it takes is counted
# below, viewers or not): this test is about the messages, not about which
# partitions a worker reads
my $ng = nginx_start(workers => 2, http => stream_http(<<'_EOC_'));
        location /stream { kafka_stream cams;
                           kafka_stream_always_consume on;
                           kafka_stream_max_frame_size 20k; }
        location /cam { kafka_stream cams; kafka_stream_key $arg_id;
                        kafka_stream_max_frame_size 20k; }
_EOC_

ok(until_true(20 * $slow, sub { workers_have('partitions') }),
   'the workers consume');
my @workers = worker_pids($ng);

my @all = map { $_->[1] } @M;
my $pool = start_viewers(n => 2, uri => '/stream', frames => \@all);
my $cam = start_viewers(n => 1, uri => '/cam?id=cam%0D%0AX-Evil:%20key',
                        frames => \@all);
my $raw = start_capture("GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");

ok(until_true(10 * $slow, sub { watching() == 4 }), '4 viewers watch');

my $log_from = log_size($ng);

# the first frame once, and until every worker has it (a fresh worker
# starts at the end of the partition)
produce('cams', $M[0][1]);
ok(until_true(10 * $slow, sub { workers_have('frames_in') }),
   'every worker has the first frame');

# one at a time: a frame that comes while the one before is still on its
# way would replace the waiting one (newest frame wins), which is not
# what this test is about
my ($served, $skipped) = (1, 0);
my @stuck;

for my $m (@M[1 .. $#M]) {
    produce('cams', $m->[1], @{$m->[2]});
    $m->[3] ? $served++ : $skipped++;
    push @stuck, $m->[0]
        if !until_true(10 * $slow, sub {
               workers_have('frames_in', $served)
               && workers_have('skipped', $skipped) });
}
is("@stuck", '', 'every message was taken or skipped in turn');

ok(until_true(10 * $slow, sub { workers_have('frames_in', $served)
                                && workers_have('skipped', $skipped) }),
   "every worker took $served frames and skipped $skipped messages");

my $st = status();
is_deeply([map { [$_->{frames_in}, $_->{skipped}] } @{$st->{workers}}],
          [[$served, $skipped], [$served, $skipped]],
          'and nothing else');

# the status lists the keys, escaped
my $status_raw = http_request("GET /status HTTP/1.0\r\n\r\n");
my ($status_body) = $status_raw =~ /\r\n\r\n(.*)\z/s;
unlike($status_body, qr/[\x00-\x09\x0b-\x1f\x7f-\xff]|\n(?!\z)/,
       'the status body holds no raw control byte');
my $json = eval { decode_json($status_body) };
ok($json, 'the status is valid JSON') or diag($@);
my @keys = map { @{$_->{keys}} } @{$json->{streams} || []};
ok((grep { $_ eq $evil_key } @keys), 'the CR/LF/NUL key is listed, intact')
    or diag(explain(\@keys));
ok(!grep({ length > 256 } @keys), 'no listed key is longer than 256 bytes');

sleep 0.3;
my $rep = stop_viewers($pool);
my $cam_rep = stop_viewers($cam);
my $bytes = stop_capture($raw);

my @want = grep { $M[$_][3] } 0 .. $#M;

for my $v (@$rep) {
    my $c = $v->{conns}[0];
    is($c->{error}, undef, "viewer $v->{id}: no broken part");
    is(join(' ', map { $_->[1] } @{$c->{parts}}), "@want",
       "viewer $v->{id}: the images, and only those, in order");
}

is(scalar @{$cam_rep->[0]{conns}[0]{parts}}, 0,
   'a key filter of "cam%0D%0A..." matches nothing (the argument is not '
   . 'decoded)');

# the raw response: only our header lines, the part headers exactly
my $r = parse_stream($bytes);
is($r->{error}, undef, 'the raw stream parses');
is($r->{status}, 200, 'status 200');
my @head = split /\r\n/, $r->{head};
shift @head;
my @odd = grep { !/^(?:Server|Date|Content-Type|Connection|Cache-Control|X-Accel-Buffering|Transfer-Encoding): [\x20-\x7e]+$/ } @head;
is("@odd", '', 'the response has only the expected header lines');
my @bad_part_heads = grep {
    $_->{head} !~ /\AContent-Type: image\/(?:png|jpeg)\r\nContent-Length: \d+\r\nX-Timestamp: \d+\.\d{3}\r\n\r\n\z/
} @{$r->{parts}};
is(scalar @bad_part_heads, 0, 'every part header is Content-Type, '
                              . 'Content-Length, X-Timestamp, nothing else')
    or diag(explain(\@bad_part_heads));
is_deeply([map { $_->{body} } @{$r->{parts}}], [map { $M[$_][1] } @want],
          'the part bodies are the images, byte for byte');
my ($png_garbage) = grep { $_->{body} eq $M[6][1] } @{$r->{parts}};
like($png_garbage->{head} // '', qr{^Content-Type: image/png\r\n},
     'a PNG-framed message is served as image/png');
unlike($bytes =~ s/\Q$_\E//gr, qr/evil|Injected/i,
       'no key or header byte in the response')
    for join '', map { $_->{body} } @{$r->{parts}};

# the log: warnings for the skipped ones, nothing worse, no crash
my @log = log_lines($ng, $log_from);
# (the warnings are rate-limited: 5 in 10 s per worker, all kinds)
ok((grep { /is not a complete PNG or JPEG image, skipped/ } @log) >= 3 * 2,
   'the skipped messages are logged') or diag(@log);
ok((grep { /is larger than kafka_stream_max_frame_size 20480, skipped/ }
    @log) >= 2, 'the oversized one is logged');
is(join('', grep { !/^[\x20-\x7e]*\n\z/ } @log), '',
   'every log line is printable ASCII');
is(join('', grep { /\[(?:alert|crit|emerg)\]|exited on signal/ } @log), '',
   'no alert, crit, emerg, no crash');
is("@{[worker_pids($ng)]}", "@workers", 'the same workers serve');

ok(nginx_stop($ng), 'nginx stops');
is(join("\n", valgrind_errors($ng)), '', 'valgrind: no memory errors');

done_testing;
