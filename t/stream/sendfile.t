# Large frames live in a memfd and go out with sendfile(): the same
# bytes as from memory, with sendfile on or off, with any boundary, over
# HTTP/2, to slow viewers; and every memfd is closed once no viewer and
# no group holds its frame.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test;
use KafkaStream::Viewers;
use File::Temp ();

# testsrc2 at 1280x720 makes PNG frames of ~110 kB, over the 32 kB from
# which a frame goes to a memfd; at 64x48 they stay on the heap
our @F = make_frames(12, format => 'png', size => '1280x720');
our @S = make_frames(2, format => 'png', size => '64x48');

no warnings 'once';
*Test::Nginx::Util::F = \@F;
*Test::Nginx::Util::S = \@S;

our $Load = ($ENV{TEST_NGINX_KAFKA_BIN} || 'build') . '/mjpeg-load';
our ($LoadPid, @H2);

# mjpeg-load's report: outside t/servroot, which the runner empties
# before each block; read, and the client reaped, within the block
our $LoadOut = File::Temp->new(TEMPLATE => 'mjpeg-load-XXXXXX', TMPDIR => 1);

$ENV{TEST_NGINX_H2_SOCKET} = File::Temp::tempdir(CLEANUP => 1) . '/h2.sock';

master_on();
workers(2);
no_shuffle();
log_level('debug');

add_response_body_check(frames_check([@F, @S]));


# the memfds of the workers' frames, by the names the module gives them

sub memfds {
    my $pidfile = "$Test::Nginx::Util::ServRoot/logs/nginx.pid";
    open my $in, '<', $pidfile or return -1;
    chomp(my $master = <$in>);

    my $n = 0;

    for my $task (glob "/proc/[0-9]*/stat") {
        open my $st, '<', $task or next;
        my $stat = <$st> // next;
        my ($pid, $ppid) = $stat =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        next if $ppid != $master;

        for my $fd (glob "/proc/$pid/fd/*") {
            my $to = readlink($fd) // next;
            $n++ if $to =~ m{^/memfd:kafka-stream-frame};
        }
    }

    return $n;
}


# "--- memfds: N" or "--- memfds: >0": the workers hold that many

add_response_body_check(sub {
    my ($block) = @_;

    my $want = $block->memfds;
    return if !defined $want;

    my $n = memfds();

    if ($want =~ /^>(\d+)$/) {
        cmp_ok($n, '>', $1, $block->name . " - memfds held by the workers");
    } else {
        is($n, $want, $block->name . " - memfds held by the workers");
    }
});

# "--- load_ok: yes": the mjpeg-load run of "--- init" passed

add_response_body_check(sub {
    my ($block) = @_;

    return if !$block->load_ok;

    waitpid $LoadPid, 0;
    is($? >> 8, 0, $block->name . " - mjpeg-load found every part valid")
        or diag(`cat $LoadOut`);
});

# "--- h2_frames: N M": what the HTTP/2 viewer of "--- init" got

add_response_body_check(sub {
    my ($block) = @_;

    my $want = $block->h2_frames;
    return if !defined $want;

    my (undef, $body) = split /\r\n\r\n/, finish_viewer(@H2), 2;

    my @got = squeeze(frame_indexes($body // '', [@F, @S]));
    my @want = split ' ', $want;
    shift @got while @got && $got[0] != $want[0];

    is("@got", "@want", $block->name . " - frames over HTTP/2");
});

ok(length($_) >= 32768, "a large test frame has " . length($_) . " bytes")
    for @F;

run_tests();

__DATA__

=== TEST 1: sendfile on: large frames go out by sendfile(), byte for byte
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    sendfile on;
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[0]);
wait_ready(2);
produce_when_watched(1, 'dbtech', [@F[1 .. 5]]);
--- request
GET /stream
--- abort
--- timeout: 8
--- frames: 0 1 2 3 4 5
--- memfds: >0
--- error_log eval
qr/sendfile: \@0 \d{5,}/
--- no_error_log
[alert]
[crit]



=== TEST 2: sendfile off: the same frames, from the memfd's mapping
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    sendfile off;
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[0]);
wait_ready(2);
produce_when_watched(1, 'dbtech', [@F[1 .. 5]]);
--- request
GET /stream
--- abort
--- timeout: 8
--- frames: 0 1 2 3 4 5
--- memfds: >0
--- no_error_log
sendfile: @
[alert]
[crit]



=== TEST 3: a boundary of its own: the separator is not in the memfd, so the part goes from memory
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    sendfile on;
    location /stream { kafka_stream dbtech; kafka_stream_boundary other; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[6]);
wait_ready(2);
produce_when_watched(1, 'dbtech', [$F[7]]);
--- request
GET /stream
--- abort
--- timeout: 3
--- response_body_like eval
qr{\A--other\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$::F[6]\E\r\n--other\r\n(?:Content-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$::F[7]\E\r\n--other\r\n)+}s
--- no_error_log
sendfile: @
[alert]
[crit]



=== TEST 4: slow viewers get whole parts by sendfile(), a fast one every frame
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    sendfile on;
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/stream";
produce('dbtech', $F[0]);
wait_ready(2);
my $pid = fork;
if ($pid == 0) {
    # ~120 kB frames at 25 a second to viewers that take 100 kB/s
    open STDOUT, '>', "$main::LoadOut";
    exec $main::Load, '-c', 4, '--slow', 3, '--slow-rate', 100000, '-d', 10,
         $url;
}
$main::LoadPid = $pid;
produce_when_watched(5, 'dbtech', [@F[1 .. 11]], interval => 0.04);
--- request
GET /stream
--- abort
--- timeout: 8
--- frames: 1 2 3 4 5 6 7 8 9 10 11
--- load_ok: yes
--- no_error_log
[alert]
[crit]



=== TEST 5: HTTP/2 with sendfile on
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    server {
        listen unix:$TEST_NGINX_H2_SOCKET http2;
        sendfile on;
        location /stream { kafka_stream dbtech; kafka_stream_idle_resend 0; }
    }
--- config
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[1]);
wait_ready(2);
my $file = File::Temp->new(UNLINK => 0)->filename;
my $pid = fork;
if ($pid == 0) {
    { exec 'curl', '-s', '-i', '--http2-prior-knowledge', '-m', '3',
           '--unix-socket', $ENV{TEST_NGINX_H2_SOCKET}, '-o', $file,
           'http://localhost/stream' };
    POSIX::_exit(127);
}
@main::H2 = ($pid, $file);
produce_when_watched(1, 'dbtech', [@F[2 .. 4]]);
--- request
GET /status
--- h2_frames: 1 2 3 4
--- no_error_log
[alert]
[crit]



=== TEST 6: small frames stay on the heap, and every memfd is closed once its frame is gone
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    sendfile on;
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[2]);
wait_ready(2);
produce_when_watched(1, 'dbtech', [$S[0], $S[1]]);
--- request
GET /stream
--- abort
--- timeout: 3
--- frames: 2 12 13
--- memfds: 0
--- no_error_log
[alert]
[crit]
