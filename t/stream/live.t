# The live stream: frames in, frames out, to every viewer, in order.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test topics => ['dbtech:1', 'parts:2'];
use KafkaStream::Viewers;
use File::Temp ();

our @F = make_frames(40, format => 'png', size => '64x48');
our @J = make_frames(4, format => 'jpeg', size => '64x48');
our @Second;

# "--- init" code runs in Test::Nginx::Util ("eval" sections say @::F)
no warnings 'once';
*Test::Nginx::Util::F = \@F;
*Test::Nginx::Util::J = \@J;

master_on();
workers(2);
no_shuffle();
log_level('info');

add_response_body_check(frames_check([@F, @J]));

# "--- second_viewer" compares what a viewer started in "--- init" got

add_response_body_check(sub {
    my ($block, $body) = @_;

    return if !$block->second_viewer;

    my @want = split ' ', $block->frames;
    my @other = squeeze(frame_indexes(finish_viewer(@main::Second), [@F, @J]));

    shift @other while @other && $other[0] != $want[0];
    is("@other", "@want", $block->name . " - the other viewer's frames");
});

run_tests();

__DATA__

=== TEST 1: frames in, frames out, in order, with two workers
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [@F[0 .. 4]]);
--- request
GET /stream
--- abort
--- timeout: 3
--- response_headers
Content-Type: multipart/x-mixed-replace; boundary=kafka-stream-frame
Cache-Control: no-cache, no-store
X-Accel-Buffering: no
!Content-Length
--- frames: 0 1 2 3 4
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: each part carries its type, length and Kafka timestamp; JPEG too
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [$F[5], $J[0]]);
--- request
GET /stream
--- abort
--- timeout: 4
--- response_body_like eval
qr{--kafka-stream-frame\r\nContent-Type: image/png\r\nContent-Length: ${\ length $::F[5]}\r\nX-Timestamp: \d{10}\.\d{3}\r\n\r\n\Q$::F[5]\E\r\n--kafka-stream-frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${\ length $::J[0]}\r\nX-Timestamp: \d{10}\.\d{3}\r\n\r\n\Q$::J[0]\E\r\n--kafka-stream-frame\r\n$}s
--- frames: 5 40



=== TEST 3: a new viewer gets the latest frame at once, from a fresh worker
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_seen(2, 'dbtech', $F[6]);
--- request
GET /stream
--- abort
--- timeout: 3
--- response_body_like eval
qr{^--kafka-stream-frame\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$::F[6]\E\r\n--kafka-stream-frame\r\n$}s



=== TEST 4: with nothing new, the latest frame is sent again
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; kafka_stream_idle_resend 200ms; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[7]);
# a stream with re-sends never falls silent: a reload ends it, after some
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 30;
    until (time > $deadline) {
        my $status = status_json();
        last if $status && $status->{streams}[0]{parts_sent} >= 5;
        select undef, undef, undef, 0.02;
    }
    open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid"
        or POSIX::_exit(1);
    kill 'HUP', scalar <$in>;
    POSIX::_exit(0);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream
--- timeout: 10
--- response_body_like eval
qr{(?:--kafka-stream-frame\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$::F[7]\E\r\n){5,}--kafka-stream-frame\r\n\r\n--kafka-stream-frame--\r\n\z}s



=== TEST 5: the key filter passes only that camera's frames
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /cam { kafka_stream dbtech; kafka_stream_key $arg_id; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech',
                     [(map { [$F[$_], key => $_ % 2 ? 'cam1' : 'cam2'] }
                           8 .. 13),
                      [$F[14], key => 'cam1x'], [$F[15], key => 'cam']]);
--- request
GET /cam?id=cam1
--- abort
--- timeout: 6
--- frames: 9 11 13



=== TEST 6: without the key argument the location shows every frame
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /cam { kafka_stream dbtech; kafka_stream_key $arg_id; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [@F[16 .. 17]], key => 'cam9');
--- request
GET /cam
--- abort
--- timeout: 2
--- frames: 16 17



=== TEST 7: partition selection
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /one { kafka_stream parts; kafka_stream_partition 1; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'parts',
                     [map { [$F[$_ ^ 1], partition => ($_ ^ 1) % 2] }
                          18 .. 23]);
--- request
GET /one
--- abort
--- timeout: 3
--- frames: 19 21 23



=== TEST 8: "all" partitions are found and merged
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
    # every frame from the worker's start: a partition that starts with
    # its viewer shows the newest of its catch-up only (t/fleet/)
    kafka_stream_always_consume on;
--- config
    location /all { kafka_stream parts; }
    location /status { kafka_stream_status; }
--- init
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 10;
    select undef, undef, undef, 0.02
        while (KafkaStream::Viewers::watched() < 1
               || KafkaStream::Viewers::consuming() < 2)
              && time < $deadline;
    for my $i (24 .. 27) {
        produce('parts', $F[$i], partition => $i % 2);
        select undef, undef, undef, 0.1;
    }
    POSIX::_exit(0);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /all
--- abort
--- timeout: 5
--- frames: 24 25 26 27
--- error_log
kafka stream: consuming "parts" [0]
kafka stream: consuming "parts" [1]



=== TEST 9: two viewers get the same frames
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
my $file = File::Temp->new->filename;
@main::Second = (start_viewer('/stream', $file, 3), $file);
produce_when_watched(2, 'dbtech', [@F[28 .. 32]]);
--- request
GET /stream
--- abort
--- timeout: 3
--- frames: 28 29 30 31 32
--- second_viewer: yes
