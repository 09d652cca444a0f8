# The replay's lookup on Apache Kafka.  ?since= and ?at= find their frame
# by Kafka's time index (offsets for times, in nginx's debug log), and it
# is exactly the frame the time names, as Kafka itself reports offsets
# and timestamps (read back with a consumer): a frame's own time, a
# millisecond before and after it, within and across record batches.  The
# same after the broker was killed and started again, when Kafka rebuilt
# its indexes from the log.  Then a lookup that hangs on a broker that
# hangs (SIGSTOP): the viewer that leaves meanwhile, and a reload
# meanwhile.  The file's own broker, which it kills and pauses.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test topics => ['times:1', 'gone:1', 'reload:1'],
                      own_broker => 1;
use KafkaStream::Viewers;

our $N = 40;
our @F = make_frames($N, format => 'png', size => '64x48');

master_on();
workers(1);
no_shuffle();
log_level('debug');


sub unix { sprintf '%d.%03d', int($_[0] / 1000), $_[0] % 1000 }


# the frames half an hour old, from 20 to 400 ms apart, in four record
# batches of ten (a producer each)
my $t = (int(time) - 1800) * 1000;
for my $batch (0 .. 3) {
    produce_batch('times', [map { $t += 20 + $_ * 97 % 381;
                                  [$F[$_], timestamp => $t] }
                            $batch * 10 .. $batch * 10 + 9]);
}

# what Kafka holds: offset, timestamp and bytes of every frame
our @K = consume('times', count => $N, timeout => 30);
die "Kafka gave back " . @K . " of the $N frames\n" if @K != $N;

# the times asked for: frames first and last, on both sides of a batch
# boundary, and others; each frame's own time and a millisecond either side
our @Times;
for my $i (0, 1, 9, 10, 17, 29, 38, 39) {
    my $ts = $K[$i]{timestamp};
    push @Times, ($i > 0 ? $ts - 1 : ()), $ts, $ts + 1;
}

# per Kafka's own answers: the first frame at or after the time, the
# last one at or before it
sub first_from { my ($t) = @_; (grep { $K[$_]{timestamp} >= $t } 0 .. $#K)[0] }
sub last_until { my ($t) = @_; (grep { $K[$_]{timestamp} <= $t } 0 .. $#K)[-1] }

# ?since= requests: only to the frame found (?until= its time), so the
# body holds that frame and nothing else; none after the last frame (live)
our @Since = grep { $_ <= $K[-1]{timestamp} } @Times;
our @SinceReq = map { my $k = $K[first_from($_)];
                      "GET /times?since=" . unix($_) . "&until="
                      . unix($k->{timestamp}) } @Since;
our @SinceHeaders = map { "X-Replay-Partition: 0\nX-Replay-Offset: "
                          . $K[first_from($_)]{offset} } @Since;
our @SinceFrames = map { first_from($_) } @Since;

our @AtReq = map { "GET /snapshot?at=" . unix($_) } @Times;
our @AtHeaders = map { "Content-Type: image/png\nX-Timestamp: "
                       . unix($K[last_until($_)]{timestamp}) } @Times;
our @AtBodies = map { $K[last_until($_)]{value} } @Times;

no warnings 'once';
*Test::Nginx::Util::K = \@K;


add_response_body_check(sub {
    my ($block, $body, $req) = @_;
    my $name = $block->name;

    # what "--- init" started ends with its block
    ok(wait_for_children(), "$name - helpers done")
        if @KafkaStream::Test::Children;

    # "--- replay_frames eval": per request, the index in @K of the one
    # frame the replay must have sent, and then its closing boundary
    my $want = $block->replay_frames;
    if ($want && defined $want->[$req]) {
        my @got = frame_indexes($body, [map { $_->{value} } @K]);
        is("@got", $want->[$req], "$name - request $req: exactly the frame");
        like($body, qr/\r\n--kafka-stream-frame--\r\n\z/,
             "$name - request $req: then the end (?until=)");
    }

    # a hung broker runs again after the block; the old worker of its
    # reload has left before that, while the broker still hung
    if ($block->old_worker_exits) {
        ok(old_worker_exited(), "$name - the old worker exited");
    }

    broker_control('resume 1') if $block->broker_paused;
});

run_tests();

__DATA__

=== TEST 1: ?since= starts at the first frame at or after the time
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /times { kafka_stream times; kafka_stream_replay on; }
--- request eval
\@::SinceReq
--- error_code eval
[(200) x @::SinceReq]
--- response_headers eval
\@::SinceHeaders
--- replay_frames eval
\@::SinceFrames
--- error_log
by Kafka's time index
--- no_error_log
by bisection
[alert]
[crit]
[error]



=== TEST 2: ?at= shows the last frame at or before the time
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /snapshot { kafka_stream_snapshot times; kafka_stream_replay on; }
--- request eval
\@::AtReq
--- error_code eval
[(200) x @::AtReq]
--- response_headers eval
\@::AtHeaders
--- response_body eval
\@::AtBodies
--- error_log
by Kafka's time index
--- no_error_log
by bisection
[alert]
[crit]
[error]



=== TEST 3: after kill -9 and a start, the same answers from the rebuilt index
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /times { kafka_stream times; kafka_stream_replay on; }
    location /snapshot { kafka_stream_snapshot times; kafka_stream_replay on; }
--- init
restart_broker();
--- request eval
[@::SinceReq, @::AtReq]
--- error_code eval
[(200) x (@::SinceReq + @::AtReq)]
--- response_headers eval
[@::SinceHeaders, @::AtHeaders]
--- response_body eval
[(qr/--kafka-stream-frame--\r\n\z/) x @::SinceReq, @::AtBodies]
--- replay_frames eval
[@::SinceFrames]
--- error_log
by Kafka's time index
--- no_error_log
by bisection
[alert]
[crit]



=== TEST 4: a viewer that leaves while its start is looked up on a hung broker
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /gone { kafka_stream gone; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
# the lookup in the thread pool waits for the broker; the viewer leaves
# as soon as nginx counts it; the broker runs again, the lookup ends
produce('gone', $::K[0]{value});
broker_control('pause 1');
my $pid = start_viewer('/gone?since=-7200', '/dev/null', 30);
main::status_until(sub { ($_[0]{workers}[0]{viewers} // 0) == 1 });
kill 'TERM', $pid;
waitpid $pid, 0;
main::status_until(sub { ($_[0]{workers}[0]{viewers} // 1) == 0 });
broker_control('resume 1');
main::status_until(sub { main::replays() == 0 });
--- request
GET /status?format=prometheus
--- response_body_like: kafka_stream_viewers\{topic="gone",partition="all"\} 0\n.*\nkafka_stream_replays 0\n
--- error_log
client prematurely closed connection
--- no_error_log eval
[qr/\[alert\]/, qr/\[crit\]/, qr/replay of "gone" \[0\] from offset/]



=== TEST 5: a reload while a lookup hangs: 503 at once, the old worker leaves
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /reload { kafka_stream reload; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
broker_control('pause 1');
# (a worker reads a partition only for its viewers: the replay's lookup
# comes first, so the worker's start is the sign)
main::after_log(qr/start worker process/, sub {
    main::status_until(sub { main::replays() > 0 }) or die "no replay\n";
    open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid" or die;
    kill 'HUP', scalar <$in>;
});
--- request
GET /reload?offset=0
--- timeout: 20
--- error_code: 503
--- response_body
the server is shutting down
--- old_worker_exits: yes
--- broker_paused: yes
--- no_error_log
[alert]
[crit]
