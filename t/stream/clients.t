# Viewers that go away, viewers that are slow, and a reload while they
# watch.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test;
use KafkaStream::Viewers;
use File::Temp ();

our @F = make_frames(24, format => 'png', size => '320x240');

master_on();
workers(2);
worker_connections(1024);
no_shuffle();
log_level('info');

no warnings 'once';
*Test::Nginx::Util::F = \@F;

our $Load = ($ENV{TEST_NGINX_KAFKA_BIN} || 'build') . '/mjpeg-load';

# mjpeg-load's report: outside t/servroot, which the runner empties
# before each block; read within the block
our $LoadOut = File::Temp->new(TEMPLATE => 'mjpeg-load-XXXXXX', TMPDIR => 1);

add_response_body_check(frames_check(\@F));

# "--- drops: yes": some frame was replaced before a viewer could take it

add_response_body_check(sub {
    my ($block) = @_;

    return if !$block->drops;

    my $status = status_json();
    cmp_ok($status->{streams}[0]{drops}, '>', 0,
           $block->name . " - the slow viewer's frames were dropped");
});

# "--- load_ok: yes": the mjpeg-load run that "--- init" started passed

add_response_body_check(sub {
    my ($block) = @_;

    return if !$block->load_ok;

    is($main::LoadStatus, 0, $block->name . " - every load client viewer got them")
        or diag(`cat $LoadOut`);
});

run_tests();

__DATA__

=== TEST 1: viewers that abort, some in the middle of a frame, are cleaned up
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 50ms;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[0]);
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/stream";
system($main::Load, '-c', 20, '-d', 5, '--max-frames', 3, '--abort-mid-frame',
       '--cycles', 5, $url) == 0 or die "mjpeg-load failed: $?\n";
system($main::Load, '-c', 20, '-d', 5, '--max-frames', 2, '--cycles', 5, $url)
    == 0 or die "mjpeg-load failed: $?\n";
my $deadline = time + 30;
select undef, undef, undef, 0.02 while watched() > 0 && time < $deadline;
--- request
GET /status
--- response_body_like eval
qr/^\{.*"streams":\[\{"topic":"dbtech","partition":"all","viewers":0,"walls":0,"frames_in":\d+,"bytes_in":\d+,"parts_sent":[1-9]\d*,/
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: 100 viewers each receive every frame
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/stream";
produce('dbtech', $F[0]);
wait_ready(2);
produce_when_watched(100, 'dbtech', [@F[1 .. 10]]);
# each: the latest frame, the warm-up frame, then the 10 frames
system("$main::Load -c 100 -d 30 --max-frames 12 --expect-frames 12 $url"
       . " > $main::LoadOut");
$main::LoadStatus = $? >> 8;
--- request
GET /status
--- response_body_like eval
qr/"viewers":0,/
--- load_ok: yes
--- no_error_log
[alert]



=== TEST 3: a slow viewer does not slow a fast one
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/stream";
my $pid = fork;
if ($pid == 0) {
    exec $main::Load, '-c', 1, '--slow', 1, '--slow-rate', 4000, '-d', 6,
         $url;
}
push @KafkaStream::Test::Children, $pid;
produce_when_watched(2, 'dbtech', [@F[1 .. 20]]);
--- request
GET /stream
--- abort
--- timeout: 6
--- frames: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
--- drops: yes
--- no_error_log
[alert]



=== TEST 4: a reload ends the streams with the closing boundary, and the old workers leave
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 100ms;
--- config
    location /stream { kafka_stream dbtech; }
    location /status { kafka_stream_status; }
--- init
produce('dbtech', $F[21]);
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 30;
    until (time > $deadline) {
        my $status = status_json();
        last if $status && $status->{streams}[0]{parts_sent} > 0;
        select undef, undef, undef, 0.02;
    }
    my $pidfile = "$Test::Nginx::Util::ServRoot/logs/nginx.pid";
    open my $in, '<', $pidfile or POSIX::_exit(1);
    my $master = <$in>;
    kill 'HUP', $master;
    POSIX::_exit(0);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream
--- timeout: 8
--- response_body_like eval
qr{\A--kafka-stream-frame\r\n.*\Q$::F[21]\E\r\n--kafka-stream-frame\r\n\r\n--kafka-stream-frame--\r\n\z}s
--- wait: 0.5
--- error_log
gracefully shutting down
exited with code 0
--- no_error_log
[alert]
[crit]
