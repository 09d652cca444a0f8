# Replay from Kafka's retained log (kafka_stream_replay): from an offset
# or a time, paced by the Kafka timestamps, then live or up to ?until=;
# the per-worker bound, the bad arguments, the snapshot at a time, and
# replays next to live viewers.  Every block has a topic of its own, so
# its offsets start at 0; the frames carry timestamps an hour old, 100 or
# 200 ms apart, set by the producer (CreateTime).  The lookup itself on
# Kafka (its time index, a broker restart, a broker that hangs) is
# t/stream/replay-lookup.t, which has a broker of its own.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test topics => [map({ "r$_:1" } 1 .. 13), 'rall:2'];
use KafkaStream::Viewers;
use File::Temp ();
use POSIX ();

our @F = make_frames(78, format => 'png', size => '32x24');
our $Base = (int(time) - 3600) * 1000;
our (@Timed, @Replays, @Reap);

no warnings 'once';
*Test::Nginx::Util::F = \@F;
*Test::Nginx::Util::Base = \$Base;

master_on();
workers(1);
no_shuffle();
log_level('info');


# times as a request may give them
sub rfc3339 {
    my ($ms) = @_;
    return POSIX::strftime('%Y-%m-%dT%H:%M:%S', gmtime int($ms / 1000))
           . sprintf('.%03dZ', $ms % 1000);
}

sub unix { sprintf '%d.%03d', int($_[0] / 1000), $_[0] % 1000 }


# frames @F[@$idx] into $topic, the n-th with the timestamp $Base + n * $gap
sub history {
    my ($topic, $idx, $gap, %opts) = @_;
    my $keys = delete $opts{keys};
    my @msgs;

    for my $n (0 .. $#$idx) {
        push @msgs, [$F[$idx->[$n]], timestamp => $Base + $n * $gap,
                     $keys ? (key => $keys->[$n]) : ()];
    }

    produce_batch($topic, \@msgs, %opts);
}


# before nginx starts, so that its consumer begins at each topic's last
# frame: a consumer that starts on an empty partition looks for its end
# for a moment, and misses what comes meanwhile
history('r1', [0 .. 7], 100);
history('r2', [10 .. 19], 100);
history('r3', [20 .. 29], 100, keys => [map { $_ % 2 ? 'b' : 'a' } 0 .. 9]);
history('r4', [33 .. 42], 200);
history('r5', [33 .. 42], 200);
history('r6', [43 .. 45], 100);
history('r7', [46 .. 49], 1000);
history('r8', [50 .. 52], 100);
history('r9', [53 .. 58], 1000, keys => [qw(a b a b a b)]);
history('r10', [59 .. 66], 300);
history('r11', [67 .. 69], 5000);
history('r12', [60 .. 63], 1000);
history('r13', [64 .. 65], 100);
history('rall', [75 .. 77], 100, keys => [qw(k1 k1 k1)], partition => 1);


add_response_body_check(sub {
    my ($block, $body) = @_;
    my $name = $block->name;

    ok(wait_for_children(), "$name - helpers done");
    waitpid $_, 0 for splice @Reap;

    # the background replays of "--- init": their frames, then the end
    for my $r (splice @Replays) {
        my ($pid, $file, $want) = @$r;
        my $got = finish_viewer($pid, $file);
        unlink $file;
        is(join(' ', frame_indexes($got, \@F)), $want,
           "$name - a replay next to it had exactly its frames");
        like($got, qr/\r\n--kafka-stream-frame--\r\n\z/,
             "$name - ... and ended at ?until=");
    }

    # exactly these frames: no gap, nothing twice, nothing else
    if (defined(my $want = $block->replay_frames)) {
        my @got = frame_indexes($body, \@F);
        is("@got", join(' ', split ' ', $want), "$name - exactly the frames");
    }

    # the old worker of a reload leaves, its replay consumers destroyed
    if ($block->old_worker_exits) {
        ok(old_worker_exited(), "$name - the old worker exited");
    }

    if ($block->ends) {
        like($body, qr/\r\n--kafka-stream-frame--\r\n\z/,
             "$name - ends with the closing boundary");
    }

    # "--- pacing: SPAN SPEED": the parts that "--- init" timed came as
    # fast as the timestamps (SPAN seconds in all) divided by SPEED say
    if (my $pacing = $block->pacing) {
        my ($span, $speed) = split ' ', $pacing;
        my @want = split ' ', $block->replay_frames;
        my @got = map { my $b = $_->{body};
                        (grep { $F[$_] eq $b } 0 .. $#F)[0] // -1 } @Timed;
        is("@got", "@want", "$name - the timed replay had the frames");

        my $took = @Timed ? $Timed[-1]{at} - $Timed[0]{at} : 0;
        cmp_ok($took, '>=', 0.8 * $span / $speed,
               "$name - paced: first to last part in ${took} s");
        cmp_ok($took, '<', 0.8 * $span,
               "$name - faster than at speed 1") if $speed > 1;
    }
});

run_tests();

__DATA__

=== TEST 1: from an offset, in order, then live without a gap or a repeat
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r1 { kafka_stream r1; kafka_stream_replay on; }
--- init
main::after_log(qr/reached the live end/,
                sub { produce('r1', $F[$_]) for 8, 9 });
--- request
GET /r1?offset=3
--- abort
--- timeout: 5
--- response_headers
Content-Type: multipart/x-mixed-replace; boundary=kafka-stream-frame
X-Replay-Partition: 0
X-Replay-Offset: 3
X-Replay-Speed: 1.000
--- replay_frames: 3 4 5 6 7 8 9
--- error_log
kafka stream: replay of "r1" [0] from offset 3, speed 1.000
kafka stream: replay of "r1" [0] reached the live end at offset 8
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: from an RFC 3339 time up to ?until=, four times as fast
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r2 { kafka_stream r2; kafka_stream_replay on; }
--- init
--- request eval
"GET /r2?since=" . main::rfc3339($::Base + 250)
    . "&until=" . main::rfc3339($::Base + 650) . "&speed=4"
--- timeout: 5
--- response_headers
X-Replay-Offset: 3
X-Replay-Speed: 4.000
--- replay_frames: 13 14 15 16
--- ends: yes
--- error_log
kafka stream: replay of "r2" [0] reached its end (until) at offset 7
--- no_error_log
[alert]
[crit]
[error]



=== TEST 3: from unix seconds, one camera's frames only, then live
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r3 { kafka_stream r3; kafka_stream_replay on;
                   kafka_stream_key $arg_id; }
--- init
main::after_log(qr/reached the live end/, sub {
    produce('r3', $F[30], key => 'b');
    produce('r3', $F[31], key => 'a');
    produce('r3', $F[32], key => 'a');
});
--- request eval
"GET /r3?id=a&speed=8&since=" . main::unix($::Base + 350)
--- abort
--- timeout: 5
--- response_headers
X-Replay-Offset: 4
X-Replay-Speed: 8.000
--- replay_frames: 24 26 28 31 32
--- no_error_log
[alert]
[crit]
[error]



=== TEST 4: at speed 1 the frames come as far apart as their timestamps
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r4 { kafka_stream r4; kafka_stream_replay on; }
--- init
@main::Timed = timed_parts('/r4?offset=0&until=' . main::unix($::Base + 1800),
                           15);
--- request eval
"GET /r4?offset=0&until=" . main::unix($::Base + 1800)
--- timeout: 10
--- replay_frames: 33 34 35 36 37 38 39 40 41 42
--- pacing: 1.8 1
--- ends: yes
--- no_error_log
[alert]
[crit]
[error]



=== TEST 5: at speed 4, a quarter of the time; a higher speed is capped
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r5 { kafka_stream r5; kafka_stream_replay on;
                   kafka_stream_replay_max_speed 4; }
--- init
@main::Timed = timed_parts('/r5?offset=0&speed=100&until='
                           . main::unix($::Base + 1800), 15);
--- request eval
"GET /r5?offset=0&speed=100&until=" . main::unix($::Base + 1800)
--- timeout: 10
--- response_headers
X-Replay-Speed: 4.000
--- replay_frames: 33 34 35 36 37 38 39 40 41 42
--- pacing: 1.8 4
--- ends: yes



=== TEST 6: with ?until= later than the log, the live end ends the stream
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r6 { kafka_stream r6; kafka_stream_replay on; }
--- init
--- request eval
"GET /r6?offset=0&speed=8&until=" . main::unix(time * 1000 + 3600000)
--- timeout: 5
--- replay_frames: 43 44 45
--- ends: yes
--- error_log
kafka stream: replay of "r6" [0] reached the live end at offset 3



=== TEST 7: over kafka_stream_replay_max replays in a worker: 503
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_replay_max 1;
    kafka_stream_idle_resend 0;
--- config
    location /r7 { kafka_stream r7; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
push @main::Reap, start_viewer('/r7?offset=0', '/dev/null', 2);
main::status_until(sub { main::replays() > 0 });
--- request
GET /r7?offset=1
--- error_code: 503
--- response_headers
Content-Type: text/plain
--- response_body
too many replays in this worker (kafka_stream_replay_max)



=== TEST 8: bad arguments: 400 or 416, with the reason in one line
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r8 { kafka_stream r8; kafka_stream_replay on; }
    location /fixed { kafka_stream r8; kafka_stream_replay on;
                      kafka_stream_partition 0; }
--- init
--- request eval
[ "GET /r8?since=yesterday",
  "GET /r8?since=2023-02-29T12:00:00Z",
  "GET /r8?since=2024-01-01T12:00:00",
  "GET /r8?offset=0&until=soon",
  "GET /r8?offset=-1",
  "GET /r8?offset=1e3",
  "GET /r8?offset=0&partition=one",
  "GET /r8?offset=0&speed=0",
  "GET /r8?offset=0&speed=fast",
  "GET /r8?since=100&offset=0",
  "GET /r8?since=200&until=100",
  "GET /fixed?offset=0&partition=1",
  "GET /r8?offset=4",
  "GET /r8?offset=0&partition=3",
  "GET /r8?offset=0&partition=5000",
  "GET /r8?since=1",
  "GET /r8?since=" . main::rfc3339($::Base - 1),
  "GET /r8?since=4102444800" ]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400,
 416, 416, 416, 416, 416, 416]
--- response_body eval
my $time = "not a time (unix seconds, -seconds before now, or RFC 3339)\n";
my $early = "the time is before the retained log, which starts at "
            . main::rfc3339($::Base) . "\n";
[ "since: $time", "since: $time", "since: $time", "until: $time",
  "offset: not a number (0, 1, 2 ...)\n",
  "offset: not a number (0, 1, 2 ...)\n",
  "partition: not a number (0, 1, 2 ...)\n",
  "speed: not a positive number (1, 2, 0.5 ...)\n",
  "speed: not a positive number (1, 2, 0.5 ...)\n",
  "since and offset exclude each other\n",
  "since is after until\n",
  "partition: this location serves another partition\n",
  "offset: out of range: partition 0 goes from 0 to its live end at 3\n",
  "partition: \"r8\" has no partition 3\n",
  "partition: out of range\n",
  "since: $early", "since: $early",
  "since: the time is in the future\n" ]
--- response_headers eval
[("Content-Type: text/plain") x 18]
--- no_error_log
[alert]
[crit]



=== TEST 9: the snapshot at a time: the frame current then
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /r9 { kafka_stream_snapshot r9; kafka_stream_replay on;
                   kafka_stream_key $arg_id; }
--- init
--- request eval
[ "GET /r9?at=" . main::unix($::Base + 3500),
  "GET /r9?at=" . main::rfc3339($::Base + 3500) . "&id=a",
  "GET /r9?at=" . main::unix($::Base + 2000) . "&id=b",
  "GET /r9?at=" . main::unix($::Base),
  "GET /r9?at=" . main::unix($::Base + 3500) . "&id=c",
  "GET /r9?at=" . main::unix($::Base - 500),
  "GET /r9?at=4102444800",
  "GET /r9?at=noon" ]
--- error_code eval
[200, 200, 200, 200, 404, 416, 416, 400]
--- response_body eval
[ $::F[56], $::F[55], $::F[54], $::F[53],
  "at: no frame of that key at or before that time\n",
  "at: the time is before the retained log, which starts at "
  . main::rfc3339($::Base) . "\n",
  "at: the time is in the future\n",
  "at: not a time (unix seconds, -seconds before now, or RFC 3339)\n" ]
--- response_headers eval
[ "Content-Type: image/png\nX-Timestamp: " . main::unix($::Base + 3000),
  "X-Timestamp: " . main::unix($::Base + 2000),
  "X-Timestamp: " . main::unix($::Base + 1000),
  "X-Timestamp: " . main::unix($::Base),
  "Content-Type: text/plain", "Content-Type: text/plain",
  "Content-Type: text/plain", "Content-Type: text/plain" ]
--- no_error_log
[alert]
[crit]



=== TEST 10: replays next to a live viewer: everyone gets their frames
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r10 { kafka_stream r10; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
my $until = main::unix($::Base + 2100);
for my $from (0, 2, 4) {
    my $file = File::Temp->new(UNLINK => 0)->filename;
    push @main::Replays, [start_viewer("/r10?offset=$from&until=$until",
                                       $file, 10),
                          $file, join(' ', 59 + $from .. 66)];
}
my $pid = fork;
if ($pid == 0) {
    # the live frames come while the replays are still replaying
    my $ok = eval {
        main::status_until(sub { ($_[0]{workers}[0]{viewers} // 0) == 4
                                 && ($_[0]{streams}[0]{last_offset} // -1)
                                    == 7 })
            or die "never 4 viewers\n";
        produce('r10', $F[$_]) for 70 .. 74;
        1;
    };
    warn $@ if !$ok;
    POSIX::_exit($ok ? 0 : 1);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /r10
--- abort
--- timeout: 3
--- replay_frames: 66 70 71 72 73 74
--- no_error_log
[alert]
[crit]
[error]



=== TEST 11: a viewer that leaves mid-replay: its consumer goes away
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /r11 { kafka_stream r11; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
my $file = File::Temp->new->filename;
my $pid = start_viewer('/r11?offset=0', $file, 2.5);
my $body = finish_viewer($pid, $file);
# the first frame, sent again every second (kafka_stream_idle_resend)
Test::More::is(join(' ', squeeze(frame_indexes($body, \@F))), '67',
               'TEST 11: the viewer had the first frame when it left');
main::status_until(sub { main::replays() == 0 });
--- request
GET /status?format=prometheus
--- response_body_like: kafka_stream_viewers\{topic="r11",partition="all"\} 0\n.*\nkafka_stream_replays 0\n
--- no_error_log
[alert]
[crit]
[error]



=== TEST 12: a reload ends replays with the closing boundary
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r12 { kafka_stream r12; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
main::after_log(qr/replay of "r12" \[0\] from offset 0/, sub {
    main::status_until(sub { $_[0]{streams}[0]{parts_sent} })
        or die "no part sent\n";
    open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid" or die;
    kill 'HUP', scalar <$in>;
});
--- request
GET /r12?offset=0
--- timeout: 10
--- replay_frames: 60
--- ends: yes
--- old_worker_exits: yes
--- no_error_log
[alert]
[crit]
[error]



=== TEST 13: a time after the last frame: live at once, with the latest
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /r13 { kafka_stream r13; kafka_stream_replay on; }
    location /status { kafka_stream_status; }
--- init
main::status_until(sub { ($_[0]{streams}[0]{last_offset} // -1) == 1 });
main::after_log(qr/reached the live end/, sub { produce('r13', $F[66]) });
--- request
GET /r13?since=-1
--- abort
--- timeout: 5
--- response_headers
X-Replay-Offset: 2
--- replay_frames: 65 66



=== TEST 14: all partitions: the replay reads the key's partition
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /all { kafka_stream rall; kafka_stream_replay on;
                    kafka_stream_key $arg_id; }
    location /status { kafka_stream_status; }
--- init
main::status_until(sub {
    grep { $_ eq 'k1' } @{ $_[0]{streams}[0]{keys} // [] } });
--- request eval
"GET /all?id=k1&offset=1&until=" . main::unix($::Base + 1000)
--- timeout: 5
--- response_headers
X-Replay-Partition: 1
X-Replay-Offset: 1
--- replay_frames: 76 77
--- ends: yes
