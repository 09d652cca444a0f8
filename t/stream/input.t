# Bytes from Kafka are never trusted: what is not a complete image, or is
# too large, is skipped with a log line; keys and headers never reach the
# response's headers.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test;
use KafkaStream::Viewers;

our @F = make_frames(6, format => 'png', size => '64x48');
our @J = make_frames(1, format => 'jpeg', size => '64x48');

no_shuffle();
log_level('info');

no warnings 'once';
*Test::Nginx::Util::F = \@F;
*Test::Nginx::Util::J = \@J;

add_response_body_check(frames_check([@F, @J]));

run_tests();

__DATA__

=== TEST 1: messages that are not complete images are skipped and logged
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [
    $F[0],
    '',
    'x',
    "not an image at all\r\n\r\n",
    "\x89PNG\r\n\x1a\n" . ("garbage" x 20),
    substr($J[0], 0, length($J[0]) - 10),
    substr($F[1], 0, length($F[1]) - 1),
    $F[2],
]);
--- request
GET /stream
--- abort
--- timeout: 6
--- frames: 0 2
--- error_log eval
[qr/kafka stream: message of 0 bytes at "dbtech" \[0\] offset \d+ is not a complete PNG or JPEG image, skipped/,
 qr/kafka stream: message of 1 bytes at "dbtech" \[0\] offset \d+ is not a complete PNG or JPEG image, skipped/]
--- no_error_log
[alert]
[crit]



=== TEST 2: larger than kafka_stream_max_frame_size: skipped with a warning
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; kafka_stream_max_frame_size 200; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [$F[3], $J[0], $F[4]]);
--- request
GET /stream
--- abort
--- timeout: 3
--- response_body_like eval
qr/\A--kafka-stream-frame\r\n\z/
--- error_log eval
qr/kafka stream: message of \d+ bytes at "dbtech" \[0\] offset \d+ is larger than kafka_stream_max_frame_size 200, skipped/



=== TEST 3: CR, LF and NUL in keys and headers never reach the response
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /cam { kafka_stream dbtech; kafka_stream_key $arg_id; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [
    [$F[5], key => "a\r\nX-Injected: key\r\n\r\n\0",
     headers => ['content-type' => "text/html\r\nX-Injected: header",
                 "x-evil\r\nX-Injected" => "1\r\n\r\n"]],
]);
--- request
GET /stream
--- abort
--- timeout: 2.5
--- frames: 5
--- raw_response_headers_unlike: X-Injected
--- response_body_unlike: X-Injected
