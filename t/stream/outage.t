# The broker is down when nginx starts: nginx starts anyway, accepts
# viewers, and the frames flow once the broker is back.  The file's own
# broker is killed (SIGKILL) before nginx starts and started again while
# the viewer waits; a reload ends the stream once the frames are out.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test own_broker => 1;
use KafkaStream::Viewers;

our @F = make_frames(4, format => 'png', size => '64x48');

master_on();
workers(1);
no_shuffle();
log_level('info');

no warnings 'once';
*Test::Nginx::Util::F = \@F;

add_response_body_check(frames_check(\@F));

# before nginx starts: frames are there, but the broker is not reachable
produce('dbtech', $F[0]);
broker_control('kill 1');

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
    my $ok = eval {
        my $deadline = time + 60;
        select undef, undef, undef, 0.02
            while watched() < 1 && time < $deadline;
        die "no viewer\n" if watched() < 1;
        broker_control('start 1');
        my $done = produce_when_watched(1, 'dbtech', [@F[1 .. 3]]);
        waitpid $done, 0;
        die "the frames were not produced\n" if $? != 0;

        # every frame taken in, up to the last one in Kafka, went out to
        # the viewer, and the worker said it is connected (its statistics,
        # once a second): a reload ends the stream
        my $last = (consume('dbtech'))[-1]{offset};
        for (;;) {
            my $s = (status_json() // {})->{streams}[0] // {};
            open my $log, '<', $Test::Nginx::Util::ErrLogFile
                or die "error.log: $!\n";
            last if ($s->{last_offset} // -1) == $last
                    && $s->{parts_sent} == $s->{frames_in}
                    && grep { /1 broker\(s\) connected/ } <$log>;
            die "the frames never reached the viewer\n" if time > $deadline;
            select undef, undef, undef, 0.02;
        }
        open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid"
            or die "nginx.pid: $!\n";
        kill 'HUP', scalar <$in>;
        1;
    };
    warn $@ if !$ok;
    POSIX::_exit($ok ? 0 : 1);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /stream
--- abort
--- timeout: 60
--- frames: 1 2 3
--- error_log
kafka stream: 1 broker(s) connected
--- no_error_log
[alert]
[crit]
