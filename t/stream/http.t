# The HTTP side: snapshot, status, methods, the viewer limit.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test topics => ['dbtech:1', 'empty:1'];
use KafkaStream::Viewers;
use File::Temp ();
use POSIX ();

our @F = make_frames(4, format => 'png', size => '64x48');
our @J = make_frames(2, format => 'jpeg', size => '64x48');

no_shuffle();
log_level('info');

# "--- init" code runs in Test::Nginx::Util ("eval" sections say @::F)
no warnings 'once';
*Test::Nginx::Util::F = \@F;
*Test::Nginx::Util::J = \@J;

# a unix socket for the HTTP/2 server block (curl speaks h2 over it)
$ENV{TEST_NGINX_H2_SOCKET} = File::Temp::tempdir(CLEANUP => 1) . '/h2.sock';

# "--- h2_frame: N": the HTTP/2 viewer "--- init" started got frame N

our @H2;

add_response_body_check(sub {
    my ($block) = @_;

    my $n = $block->h2_frame;
    return if !defined $n;

    my ($pid, $file) = @H2;
    waitpid $pid, 0;

    open my $in, '<:raw', $file or die "$file: $!";
    my $got = do { local $/; <$in> };

    like($got, qr{^HTTP/2 200 ?\r\n.*content-type: multipart/x-mixed-replace; boundary=kafka-stream-frame\r\n}is,
         $block->name . " - HTTP/2 response headers");
    like($got, qr{\r\n\r\n--kafka-stream-frame\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$F[$n]\E\r\n--kafka-stream-frame\r\n}s,
         $block->name . " - the frame over HTTP/2");
});

run_tests();

__DATA__

=== TEST 1: snapshot: the latest frame as an ordinary response
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /snapshot { kafka_stream_snapshot dbtech; }
    location /status { kafka_stream_status; }
--- init
# the worker may start at $J[0]: the snapshot waits until it has $F[1]
produce('dbtech', $J[0]);
produce_seen(1, 'dbtech', $F[1]);
--- request
GET /snapshot
--- response_headers
Content-Type: image/png
Cache-Control: no-cache, no-store
--- response_headers_like
X-Timestamp: \d{10}\.\d{3}
--- response_body eval
$::F[1]
--- no_error_log
[alert]



=== TEST 2: snapshot of a JPEG, with its length
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /snapshot { kafka_stream_snapshot dbtech; }
    location /status { kafka_stream_status; }
--- init
# the worker may start at the previous test's frame
produce_seen(1, 'dbtech', $J[1]);
--- request
GET /snapshot
--- response_headers eval
"Content-Type: image/jpeg\nContent-Length: " . length($::J[1])
--- response_body eval
$::J[1]



=== TEST 3: snapshot of a topic without frames: 503 with Retry-After
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /snapshot { kafka_stream_snapshot empty; }
--- request
GET /snapshot
--- timeout: 6
--- error_code: 503
--- response_headers
Retry-After: 1



=== TEST 4: status as JSON
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; }
    location /one { kafka_stream empty; kafka_stream_partition 0; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[2], key => "cam\"1\r\n");
--- request
GET /status
--- response_headers
Content-Type: application/json
--- response_body_like eval
qr/^\{"version":"[\d.]+","workers":\[\{"pid":\d+,"brokers_up":\d+,"partitions":0,"bytes_in":0,"viewers":0,"frames_in":0,"skipped":0,"parts_sent":0,"drops":0,"renditions":0,"making":0,"consuming":\{\}\}\],"streams":\[\{"topic":"dbtech","partition":"all","viewers":0,"walls":0,"frames_in":\d+,"bytes_in":\d+,"parts_sent":0,"drops":0,"skipped":0,"last_offset":(?:\d+|null),"latest_age_ms":(?:\d+|null),"broker":"(?:up|down)","sizes":\[\],"keys":\[(?:"cam\\u00221\\u000d\\u000a")?\]\},\{"topic":"empty","partition":0,.*\}\]\}\n$/s



=== TEST 5: status in Prometheus text, by argument
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- request
GET /status?format=prometheus
--- response_headers
Content-Type: text/plain; version=0.0.4
--- response_body_like eval
qr/^# HELP kafka_stream_viewers .*\nkafka_stream_viewers\{topic="dbtech",partition="all"\} 0\n.*kafka_stream_frames_received_total\{topic="dbtech",partition="all"\} \d+\n.*kafka_stream_brokers_up \d+\n# HELP kafka_stream_worker_partitions .*\nkafka_stream_worker_partitions\{pid="\d+"\} 0\n# HELP kafka_stream_worker_bytes_received_total .*\nkafka_stream_worker_bytes_received_total\{pid="\d+"\} 0\n$/s



=== TEST 6: status in Prometheus text, by Accept
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- request
GET /status
--- more_headers
Accept: text/plain
--- response_headers
Content-Type: text/plain; version=0.0.4
--- response_body_like eval
qr/kafka_stream_drops_total\{topic="dbtech",partition="all"\} 0\n/



=== TEST 7: HEAD answers the stream's headers only
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; }
--- request
HEAD /stream
--- response_headers
Content-Type: multipart/x-mixed-replace; boundary=kafka-stream-frame
--- response_body chomp



=== TEST 8: other methods are not allowed
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; }
    location /snapshot { kafka_stream_snapshot dbtech; }
--- request eval
["POST /stream\nbody", "DELETE /snapshot"]
--- error_code eval
[405, 405]



=== TEST 9: over kafka_stream_max_viewers: 503, and the viewer inside keeps its stream
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream { kafka_stream dbtech; kafka_stream_max_viewers 1; }
    location /status { kafka_stream_status; }
--- init
my $file = File::Temp->new(UNLINK => 0)->filename;
@main::First = (start_viewer('/stream', $file, 3), $file);
my $deadline = time + 10;
select undef, undef, undef, 0.02 while watched() < 1 && time < $deadline;
--- request
GET /stream
--- error_code: 503
--- error_log
kafka stream: 1 viewers reached (kafka_stream_max_viewers)
--- wait: 0.1



=== TEST 10: a custom boundary
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /stream {
        kafka_stream dbtech;
        kafka_stream_boundary "frame:42";
        kafka_stream_idle_resend 0;
    }
--- init
produce('dbtech', $F[3]);
--- request
GET /stream
--- abort
--- timeout: 2
--- response_headers
Content-Type: multipart/x-mixed-replace; boundary=frame:42
--- response_body_like eval
qr{^--frame:42\r\nContent-Type: image/png\r\n.*\Q$::F[3]\E\r\n--frame:42\r\n}s



=== TEST 11: HTTP/2
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    server {
        listen unix:$TEST_NGINX_H2_SOCKET http2;
        location /stream { kafka_stream dbtech; kafka_stream_idle_resend 0; }
    }
--- config
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[0]);
my $file = File::Temp->new(UNLINK => 0)->filename;
my $pid = fork;
if ($pid == 0) {
    { exec 'curl', '-s', '-i', '--http2-prior-knowledge', '-m', '3',
           '--unix-socket', $ENV{TEST_NGINX_H2_SOCKET}, '-o', $file,
           'http://localhost/stream' };
    POSIX::_exit(127);
}
@main::H2 = ($pid, $file);
--- request
GET /status
--- h2_frame: 0
