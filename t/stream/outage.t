# The broker is down when nginx starts: nginx starts anyway, accepts
# viewers, and the frames flow once the broker is back.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test;
use KafkaStream::Viewers;

our @F = make_frames(4, format => 'png', size => '64x48');

no_shuffle();
log_level('info');

no warnings 'once';
*Test::Nginx::Util::F = \@F;

add_response_body_check(frames_check(\@F));

# before nginx starts: frames are there, but the broker is not reachable
produce('dbtech', $F[0]);
broker_control('down -1');

run_tests();

__DATA__

=== TEST 1: broker down at start, then up: the viewer waits and gets the frames
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 30;
    select undef, undef, undef, 0.02 while watched() < 1 && time < $deadline;
    broker_control('up -1');
    my $done = produce_when_watched(1, 'dbtech', [@F[1 .. 3]]);
    waitpid $done, 0;
    POSIX::_exit($? == 0 ? 0 : 1);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream
--- abort
--- timeout: 8
--- frames: 1 2 3
--- error_log
kafka stream: 1 broker(s) connected
--- no_error_log
[alert]
[crit]
