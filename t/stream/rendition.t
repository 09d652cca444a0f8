# Each viewer at its size and rate: ?width= and ?height= (kafka_stream_sizes)
# and ?fps=, on live streams, snapshots and replays.  The parts are decoded
# (ffprobe, ffmpeg) to check their size; frames carry Kafka timestamps set
# by the producer (an hour old, at known spacings), by which the parts are
# told apart and the rate is checked.  Every block has a topic of its own.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test topics => [(map { "w$_:1" } 1 .. 17), 'w18:2'];
use KafkaStream::Viewers;
use File::Temp ();
use POSIX ();
use Time::HiRes ();

our @J = make_frames(24, format => 'jpeg', size => '640x360');
our @P = make_frames(4, format => 'png', size => '640x360');
our @K = make_frames(4, format => 'jpeg', size => '320x240');
our @Big = big_frames(2);
our $Base = (int(time) - 3600) * 1000;
our (@Also, %Seen, $H2);

no warnings 'once';
*Test::Nginx::Util::J = \@J;
*Test::Nginx::Util::P = \@P;
*Test::Nginx::Util::K = \@K;
*Test::Nginx::Util::Big = \@Big;
*Test::Nginx::Util::Base = \$Base;

$ENV{TEST_NGINX_H2_SOCKET} = File::Temp::tempdir(CLEANUP => 1) . '/h2.sock';

master_on();
workers(1);
no_shuffle();
log_level('info');


# 4K PNGs with noise: some 80 ms of CPU each to make smaller, so that a
# test can act while one is being made
sub big_frames {
    my ($n) = @_;
    my $dir = File::Temp::tempdir(CLEANUP => 1);

    KafkaStream::Test::ffmpeg('-f', 'lavfi', '-i',
                              'testsrc2=size=3840x2160,noise=alls=2:allf=t',
                              '-frames:v', $n, "$dir/big-%02d.png");

    return map { KafkaStream::Test::slurp(sprintf "$dir/big-%02d.png", $_) }
               1 .. $n;
}


# waits until the worker is making a frame in the thread pool
sub making {
    my $deadline = time + 10;

    until (((status_json() // {})->{workers} // [{}])->[0]{making}) {
        die "nothing was being made\n" if time > $deadline;
        Time::HiRes::sleep(0.002);
    }
}


# [frame, timestamp => Base + n * gap] for produce_when_watched and others
sub stamped {
    my ($frames, $gap, @idx) = @_;
    return map { [$frames->[$idx[$_]], timestamp => $Base + $_ * $gap] }
               0 .. $#idx;
}


# the parts of a body: { type, stamp (index by the block's gap), body }
sub parts_of {
    my ($body, $gap) = @_;

    return map {
        my ($s) = ($_->{headers}{'x-timestamp'} // '') =~ /^(\d+\.\d{3})$/;
        { type => $_->{headers}{'content-type'} // '',
          ms => defined $s ? int($s * 1000 + 0.5) - $Base : undef,
          body => $_->{body} }
    } KafkaStream::Test::multipart_parts($body, 'kafka-stream-frame');
}


# "--- parts: mjpeg 320x180 [image/jpeg]": every part is of that kind;
# "--- stamps: 0 1 2" (with "--- gap: 100"): the parts, by timestamp, in
# order, re-sends squeezed out; "--- spacing: 200": no two consecutive
# parts closer in Kafka time, but the last, which the rate held until
# nothing newer came
sub check_parts {
    my ($name, $block, $body, $what) = @_;

    my $gap = $block->gap // 100;
    my @parts = parts_of($body, $gap);

    ok(@parts > 0, "$name - $what: parts came");

    if (my $want = $block->parts) {
        my ($kind, $type) = $want =~ /^(\S+ \S+)(?: (\S+))?$/;
        my %got;
        $got{image_info($_->{body})}++ for @parts;
        is(join(',', sort keys %got), $kind, "$name - $what: every part $kind");

        if ($type) {
            is(join(',', sort { $a cmp $b } keys %{{ map { $_->{type} => 1 } @parts }}),
               $type, "$name - $what: Content-Type $type");
        }
    }

    my @ms = squeeze(map { $_->{ms} // -1 } @parts);

    if (defined(my $want = $block->stamps)) {
        my @idx = map { $_ % $gap ? "?$_" : $_ / $gap } @ms;
        my @w = split ' ', $want;
        shift @idx while @idx && $idx[0] ne $w[0];
        is("@idx", $want, "$name - $what: the frames, by timestamp")
            or diag("timestamps: @ms");
    }

    if (my $spacing = $block->spacing) {
        my @close = grep { $ms[$_] - $ms[$_ - 1] < $spacing } 1 .. $#ms - 1;
        is(scalar @close, 0,
           "$name - $what: parts at least $spacing ms apart in Kafka time")
            or diag("timestamps: @ms");
    }
}


# background viewers of "--- init" (watch()): "--- also: URL KIND" lines
sub watch {
    my ($seconds, @uris) = @_;

    for my $uri (@uris) {
        my $file = File::Temp->new(UNLINK => 0)->filename;
        push @Also, [start_viewer($uri, $file, $seconds), $file, $uri];
    }
}


# the status, once $code says it is as expected (or after 10 s)
sub status_when {
    my ($code) = @_;
    my $deadline = time + 10;
    my $status;

    until (($status = status_json()) && $code->($status)) {
        return $status if time > $deadline;
        Time::HiRes::sleep(0.02);
    }

    return $status;
}


sub size_of {
    my ($status, $width) = @_;
    my ($s) = grep { $_->{width} == $width } @{$status->{streams}[0]{sizes}};
    return $s // {};
}


# before nginx starts, so that its consumer begins at these: the frame a
# block's viewers find first (a consumer that starts on an empty
# partition looks for its end for a moment, and misses what comes
# meanwhile), and the history of the replay
produce('w2', $J[0], timestamp => $Base);
produce('w3', $J[5], timestamp => $Base);
produce('w5', $J[20], timestamp => $Base - 1000);
produce('w8', $J[23], timestamp => $Base - 1000);
produce('w9', $P[0], timestamp => $Base);
produce('w10', $J[0], timestamp => $Base);
produce('w14', $P[1], timestamp => $Base);
produce_batch('w11', [stamped(\@J, 100, 0 .. 9)]);


add_response_body_check(sub {
    my ($block, $body) = @_;
    my $name = $block->name;

    ok(wait_for_children(), "$name - producers done");

    check_parts($name, $block, $body, 'the viewer')
        if $block->parts || defined $block->stamps;

    my @also = split /\n/, $block->also // '';

    for my $v (splice @Also) {
        my ($pid, $file, $uri) = @$v;
        my $got = finish_viewer($pid, $file);
        unlink $file;

        my ($line) = grep { /^\Q$uri\E / } @also;
        my (undef, $kind) = split ' ', $line // '', 2;
        my %got;
        $got{image_info($_->{body})}++ for parts_of($got, 100);
        is(join(',', sort keys %got), $kind // '?', "$name - $uri: $kind");
    }

    if (my $h2 = $block->h2_parts) {
        my ($pid, $file) = @$H2;
        waitpid $pid, 0;
        open my $in, '<:raw', $file or die "$file: $!";
        my $got = do { local $/; <$in> };
        unlink $file;

        like($got, qr{^HTTP/2 200}, "$name - HTTP/2 response");
        my (undef, $stream) = split /\r\n\r\n/, $got, 2;
        my %kinds;
        $kinds{image_info($_->{body})}++ for parts_of($stream // '', 100);
        is(join(',', sort keys %kinds), $h2, "$name - HTTP/2 parts: $h2");
    }

    if (my $want = $block->picture) {
        is(image_info($body), $want, "$name - the picture: $want");
    }

    if (my $code = $block->status_check) {
        my $check = eval "sub { my (\$status) = \@_; $code }" or die $@;
        $check->(status_json() // {});
    }
});

run_tests();

__DATA__

=== TEST 1: ?width=320 of a 640x360 JPEG: every part a 320x180 JPEG, each frame in order
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w1; kafka_stream_sizes 160 320; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'w1', [main::stamped(\@::J, 100, 0 .. 5)],
                     interval => 0.2);
--- request
GET /stream?width=320
--- abort
--- timeout: 4
--- parts: mjpeg 320x180 image/jpeg
--- stamps: 0 1 2 3 4 5
--- no_error_log
[alert]
[crit]
[warn]



=== TEST 2: the nearest size not larger than asked; the smallest below it; ?height= by the aspect; the source's own size untouched
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w2; kafka_stream_sizes 320 160; }
    location /status { kafka_stream_status; }
--- init
# the first frame (made before nginx started) tells the later viewers the
# source's size and aspect
main::watch(4, '/stream?width=100', '/stream?height=180', '/stream?width=640',
            '/stream?width=5000', '/stream?width=320&height=100',
            '/stream?height=100');
produce_when_watched(7, 'w2', [main::stamped(\@::J, 100, 1 .. 4)]);
--- request
GET /stream?width=200
--- abort
--- timeout: 4
--- parts: mjpeg 160x90
--- also
/stream?width=100 mjpeg 160x90
/stream?height=180 mjpeg 320x180
/stream?width=640 mjpeg 640x360
/stream?width=5000 mjpeg 640x360
/stream?width=320&height=100 mjpeg 160x90
/stream?height=100 mjpeg 160x90



=== TEST 3: asking for the source's size sends the source frames, byte for byte
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w3; kafka_stream_sizes 160 320; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'w3', [main::stamped(\@::J, 100, 6 .. 8)]);
--- request
GET /stream?width=640
--- abort
--- timeout: 3
--- response_body_like eval
qr{\Q$::J[6]\E\r\n--kafka-stream-frame\r\n.*\Q$::J[7]\E\r\n--kafka-stream-frame\r\n.*\Q$::J[8]\E\r\n--kafka-stream-frame\r\n$}s



=== TEST 4: PNG in, JPEG out
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w4; kafka_stream_sizes 320; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'w4', [main::stamped(\@::P, 100, 0 .. 3)],
                     interval => 0.4);
--- request
GET /stream?width=320
--- abort
--- timeout: 5
--- parts: mjpeg 320x180 image/jpeg
--- stamps: 0 1 2 3



=== TEST 5: ?fps=5 of frames 40 ms apart: 200 ms apart in Kafka time, the newest winning; the last, held back, still comes
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w5; kafka_stream_sizes 160; }
    location /status { kafka_stream_status; }
--- init
main::watch(5, '/stream?fps=5&width=160');
# all at once, so that they come faster than the rate whatever the load
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 30;
    Time::HiRes::sleep(0.02) until watched() >= 2 || time > $deadline;
    # the consumer has found the end of the log (it took the frame made
    # before nginx started): it sees all that comes now
    KafkaStream::Viewers::wait_ready(1);
    produce_batch('w5', [main::stamped(\@::J, 40, 0 .. 14)]);
    POSIX::_exit(0);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream?fps=5
--- abort
--- timeout: 5
--- gap: 40
--- stamps: 0 5 10 14
--- spacing: 200
--- also
/stream?fps=5&width=160 mjpeg 160x90



=== TEST 6: each frame made once per size, whatever the number of viewers of that size
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w6; kafka_stream_sizes 160 320; }
    location /status { kafka_stream_status; }
--- init
main::watch(4, ('/stream?width=320') x 3, ('/stream?width=160') x 3,
            '/stream');
# spaced as a camera at 5 fps: each frame is made before the next comes
produce_when_watched(8, 'w6', [main::stamped(\@::J, 100, 0 .. 5)],
                     interval => 0.2);
--- request
GET /stream?width=320
--- abort
--- timeout: 5
--- parts: mjpeg 320x180
--- stamps: 0 1 2 3 4 5
--- also
/stream?width=320 mjpeg 320x180
/stream?width=160 mjpeg 160x90
/stream mjpeg 640x360
--- status_check
my $in = $status->{streams}[0]{frames_in};
for my $w (160, 320) {
    my $s = main::size_of($status, $w);
    is($s->{frames_made}, $in, "width $w: one frame made per frame in ($in)");
    is($s->{skipped} + $s->{failed}, 0, "width $w: none skipped or failed");
    ok($s->{cpu_ms} > 0, "width $w: CPU time counted ($s->{cpu_ms} ms)");
}



=== TEST 7: a slow viewer of a size does not slow a fast one of the same size
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w7; kafka_stream_sizes 320; }
    location /status { kafka_stream_status; }
--- init
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/stream?width=320";
my $load = ($ENV{TEST_NGINX_KAFKA_BIN} || 'build') . '/mjpeg-load';
my $pid = fork;
if ($pid == 0) {
    { exec $load, '-c', 1, '--slow', 1, '--slow-rate', 2000, '-d', 10, $url };
    POSIX::_exit(127);
}
push @KafkaStream::Test::Children, $pid;
produce_when_watched(2, 'w7', [main::stamped(\@::J, 100, 0 .. 11)],
                     interval => 0.2);
--- request
GET /stream?width=320
--- abort
--- timeout: 10
--- parts: mjpeg 320x180
--- stamps: 0 1 2 3 4 5 6 7 8 9 10 11
--- status_check
cmp_ok($status->{streams}[0]{drops}, '>', 0, "the slow viewer's frames were dropped");
is(main::size_of($status, 320)->{frames_made}, $status->{streams}[0]{frames_in},
   'one frame made per frame in');
--- no_error_log
[alert]



=== TEST 8: a size nobody watches any more stops being made, and its memory goes
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w8; kafka_stream_sizes 320; }
    location /status { kafka_stream_status; }
--- init
my $file = File::Temp->new(UNLINK => 0)->filename;
my $pid = start_viewer('/stream?width=320', $file, 30);
my $deadline = time + 10;
Time::HiRes::sleep(0.02) until watched() || time > $deadline;
for my $n (0 .. 2) {
    KafkaStream::Viewers::produce_seen(1, 'w8', $::J[$n],
                                       timestamp => $::Base + 100 * $n);
}
main::status_when(sub { main::size_of($_[0], 320)->{frames_made} >= 3 });
kill 'TERM', $pid;
waitpid $pid, 0;
unlink $file;
my $gone = main::status_when(sub { $_[0]{workers}[0]{renditions} == 0 });
%main::Seen = (made => main::size_of($gone, 320)->{frames_made},
               in => $gone->{streams}[0]{frames_in},
               renditions => $gone->{workers}[0]{renditions});
for my $n (3 .. 5) {
    KafkaStream::Viewers::produce_seen(1, 'w8', $::J[$n],
                                       timestamp => $::Base + 100 * $n);
}
--- request
GET /status
--- status_check
is($main::Seen{renditions}, 0, 'no rendition left once its viewer left');
cmp_ok($main::Seen{made}, '>=', 3, 'frames were made while watched');
is($status->{streams}[0]{frames_in}, $main::Seen{in} + 3, 'frames came after');
is(main::size_of($status, 320)->{frames_made}, $main::Seen{made},
   'none made once nobody watched');
is(main::size_of($status, 320)->{viewers}, 0, 'no viewer of the size');
--- response_body_like: "renditions":0



=== TEST 9: a snapshot at a size: a JPEG of that size
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /snapshot { kafka_stream_snapshot w9; kafka_stream_sizes 160 320; }
    location /plain { kafka_stream_snapshot w9; }
    location /status { kafka_stream_status; }
--- request eval
["GET /snapshot?width=320", "GET /snapshot?height=90", "GET /plain?width=320"]
--- response_headers eval
["Content-Type: image/jpeg", "Content-Type: image/jpeg",
 "Content-Type: image/png"]
--- response_body_like eval
[qr/^\xff\xd8/, qr/^\xff\xd8/, qr/^\x89PNG/]



=== TEST 10: the snapshot's picture decodes to the size asked
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /snapshot { kafka_stream_snapshot w10; kafka_stream_sizes 160; }
    location /status { kafka_stream_status; }
--- request
GET /snapshot?width=160
--- picture: mjpeg 160x90
--- status_check
is(main::size_of($status, 160)->{frames_made}, 1, 'made once');
is($status->{workers}[0]{renditions}, 0, 'then freed');



=== TEST 11: a replay at ?width= and ?fps= (speed 2: 400 ms apart in Kafka time), ending with the frame the rate held
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w11; kafka_stream_replay on; kafka_stream_sizes 160; }
    location /status { kafka_stream_status; }
--- request eval
"GET /stream?width=160&fps=5&speed=2&since=" . ($::Base / 1000) . "&until=" . ($::Base / 1000 + 0.9)
--- timeout: 6
--- parts: mjpeg 160x90
--- stamps: 0 4 8 9
--- spacing: 400
--- response_body_like: --kafka-stream-frame--\r\n\z



=== TEST 12: keys: only that camera's frames, at the size
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /cam { kafka_stream w12; kafka_stream_key $arg_id; kafka_stream_sizes 160; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'w12', [
    [$::J[0], key => 'a', timestamp => $::Base],
    [$::K[0], key => 'b', timestamp => $::Base + 100],
    [$::J[1], key => 'a', timestamp => $::Base + 200],
    [$::K[1], key => 'b', timestamp => $::Base + 300],
    [$::J[2], key => 'a', timestamp => $::Base + 400]]);
--- request
GET /cam?id=a&width=160
--- abort
--- timeout: 4
--- parts: mjpeg 160x90
--- stamps: 0 2 4



=== TEST 13: HTTP/2 viewers of a size
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    server {
        listen unix:$TEST_NGINX_H2_SOCKET http2;
        location /stream { kafka_stream w13; kafka_stream_sizes 160; kafka_stream_idle_resend 0; }
    }
--- config
    location /status { kafka_stream_status; }
--- init
my $file = File::Temp->new(UNLINK => 0)->filename;
my $pid = fork;
if ($pid == 0) {
    { exec 'curl', '-s', '-i', '--http2-prior-knowledge', '-m', '4',
           '--unix-socket', $ENV{TEST_NGINX_H2_SOCKET}, '-o', $file,
           'http://localhost/stream?width=160' };
    POSIX::_exit(127);
}
$main::H2 = [$pid, $file];
produce_when_watched(1, 'w13', [main::stamped(\@::J, 100, 0 .. 3)]);
--- request
GET /status
--- h2_parts: mjpeg 160x90



=== TEST 14: bad ?fps=, ?width=, ?height=: 400 with a one-line reason; a location without sizes ignores the sizes
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream w14; kafka_stream_sizes 160; }
    location /plain { kafka_stream_snapshot w14; }
    location /status { kafka_stream_status; }
--- request eval
["GET /stream?fps=0", "GET /stream?fps=-1", "GET /stream?fps=abc",
 "GET /stream?fps=", "GET /stream?width=-1", "GET /stream?width=0",
 "GET /stream?width=99999999", "GET /stream?width=abc",
 "GET /stream?height=1e3", "GET /plain?fps=0",
 "GET /plain?width=abc&height=-5"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 200]
--- response_body eval
["fps: not a number of frames a second above 0 (25, 2, 0.5 ...)\n",
 "fps: not a number of frames a second above 0 (25, 2, 0.5 ...)\n",
 "fps: not a number of frames a second above 0 (25, 2, 0.5 ...)\n",
 "fps: not a number of frames a second above 0 (25, 2, 0.5 ...)\n",
 "width: not a number of pixels (1 to 16384)\n",
 "width: not a number of pixels (1 to 16384)\n",
 "width: not a number of pixels (1 to 16384)\n",
 "width: not a number of pixels (1 to 16384)\n",
 "height: not a number of pixels (1 to 16384)\n",
 "fps: not a number of frames a second above 0 (25, 2, 0.5 ...)\n",
 $::P[1]]



=== TEST 15: a viewer that leaves while its frame is being made: the frame is not shown, the rendition goes
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_max_frame_size 16m;
--- config
    location /stream {
        kafka_stream w15;
        kafka_stream_key $arg_id;
        kafka_stream_sizes 320;
    }
    location /status { kafka_stream_status; }
--- init
# A frame made before the viewer went was rightly made and shown: then
# the viewer's file has it, and the block tries again (a loaded machine
# may finish a frame before the viewer's kill), up to 5 times, each with
# a camera of its own (no latest frame to make when the viewer comes).
$main::Shown = 0;
$main::Left = 0;
for my $try (1 .. 5) {
    my $file = File::Temp->new(UNLINK => 0)->filename;
    my $pid = start_viewer("/stream?width=320&id=k$try", $file, 30);
    my $deadline = time + 10;
    Time::HiRes::sleep(0.02) until watched() || time > $deadline;
    # two 4K PNGs: one is made, the other waits; the viewer goes meanwhile
    produce_batch('w15', [map { [@$_, key => "k$try"] }
                              main::stamped(\@::Big, 100, 0, 1)],
                  config => ['message.max.bytes=16000000']);
    main::making();
    kill 'TERM', $pid;
    waitpid $pid, 0;
    my $got = do { local $/; open my $in, '<:raw', $file; <$in> // '' };
    unlink $file;
    main::status_when(sub { $_[0]{workers}[0]{making} == 0
                             && $_[0]{workers}[0]{renditions} == 0 });
    if ($got !~ m{Content-Type: image/jpeg}) {
        $main::Left = 1;
        last;
    }
    $main::Shown = main::size_of(status_json(), 320)->{frames_made};
}
--- request
GET /status
--- status_check
my $s = main::size_of($status, 320);
ok($main::Left, 'the viewer left while its frame was being made');
is($s->{frames_made}, $main::Shown, 'nothing made for nobody');
cmp_ok($s->{skipped}, '>=', 1, 'what was being made was dropped');
is($status->{workers}[0]{renditions}, 0, 'the rendition is gone');
--- no_error_log
[alert]
[crit]



=== TEST 16: a worker that exits while a frame is being made frees it all
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_max_frame_size 16m;
--- config
    location /stream { kafka_stream w16; kafka_stream_sizes 320; }
    location /status { kafka_stream_status; }
--- init
my $pid = fork;
if ($pid == 0) {
    my $ok = eval {
        my $deadline = time + 10;
        Time::HiRes::sleep(0.02) until watched() || time > $deadline;
        produce_batch('w16', [main::stamped(\@::Big, 100, 0, 1)],
                      config => ['message.max.bytes=16000000']);
        main::making();
        # at once, while the thread pool makes it: a fast shutdown
        open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid"
            or die "nginx.pid: $!\n";
        kill 'TERM', scalar <$in>;
        1;
    };
    warn $@ if !$ok;
    POSIX::_exit($ok ? 0 : 1);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream?width=320
--- abort
--- timeout: 5
--- ignore_response
--- wait: 1
--- error_log
rendition(s) freed at exit
--- no_error_log
[alert]
[crit]



=== TEST 17: a reload ends the streams of a size with the closing boundary
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream w17; kafka_stream_sizes 160; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'w17', [main::stamped(\@::J, 100, 0 .. 2)],
                     interval => 0.2);
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 30;
    until (time > $deadline) {
        my $s = status_json();
        # the first frame comes twice (produce_when_watched), then 1 and 2
        last if $s && $s->{streams}[0]{parts_sent} >= 4;
        Time::HiRes::sleep(0.02);
    }
    open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid"
        or POSIX::_exit(1);
    kill 'HUP', scalar <$in>;
    POSIX::_exit(0);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream?width=160
--- timeout: 10
--- parts: mjpeg 160x90
--- stamps: 0 1 2
--- response_body_like: \r\n--kafka-stream-frame--\r\n\z
--- wait: 0.5
--- error_log
gracefully shutting down
--- no_error_log
[alert]
[crit]



=== TEST 18: a location of one partition, at a size: that partition's frames only
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /one { kafka_stream w18; kafka_stream_partition 1; kafka_stream_sizes 160; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'w18', [
    [$::J[0], partition => 1, timestamp => $::Base],
    [$::J[1], partition => 0, timestamp => $::Base + 100],
    [$::J[2], partition => 1, timestamp => $::Base + 200],
    [$::J[3], partition => 0, timestamp => $::Base + 300],
    [$::J[4], partition => 1, timestamp => $::Base + 400]], interval => 0.2);
--- request
GET /one?width=160
--- abort
--- timeout: 5
--- parts: mjpeg 160x90
--- stamps: 0 2 4
