# Walls (kafka_stream_wall): the frames of many keys in one response,
# each part naming its key in an X-Key line, percent-encoded; each key
# newest-frame-wins on its own; ?keys= chooses the keys.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test;
use KafkaStream::Viewers;
use File::Temp ();
use IO::Select;
use POSIX ();
use Socket qw(:all);
use Time::HiRes qw(time sleep);

our @F = make_frames(12, format => 'png', size => '64x48');

# large frames for the slow reader: each fills the socket by itself
our @B = make_frames(41, format => 'png', size => '640x360');

# keys of any bytes: what the X-Key lines must give back, byte for byte
our @K = ('cam1', 'cam 2', "cam\r\nX-Evil: 1", q{q"'<script>alert(1)</script>},
          "\xff\x00\x01%,+;", "\xce\xba\xce\xac\xce\xbc\xce\xb5\xcf\x81\xce\xb1",
          'early', 'late');

# a unix socket for the HTTP/2 server block (curl speaks h2 over it)
$ENV{TEST_NGINX_H2_SOCKET} = File::Temp::tempdir(CLEANUP => 1) . '/h2.sock';

our @H2;
our %Slow;

master_on();
workers(2);
no_shuffle();
log_level('info');

no warnings 'once';
*Test::Nginx::Util::F = \@F;
*Test::Nginx::Util::B = \@B;
*Test::Nginx::Util::K = \@K;

# a part's key, as its X-Key line says it
sub part_key {
    my ($part) = @_;
    my $v = $part->{headers}{'x-key'} // return undef;
    return undef if $v !~ /^(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})+$/;
    $v =~ s/%([0-9A-F]{2})/chr hex $1/ge;
    return $v;
}

# the parts of a wall's body: [frame index in @F or -1, key or undef, part]
sub wall_parts {
    my ($body, $frames) = @_;
    my %index;
    @index{@$frames} = (0 .. $#$frames);
    return map { [$index{$_->{body}} // -1, part_key($_), $_] }
           multipart_parts($body, 'kafka-stream-frame');
}

# "--- wall: 0:0 1:1 2:5": the parts came as frame:key (indexes in @F and
# @K), from the last time the first one came, re-sends squeezed; every part
# has exactly the lines X-Key, Content-Type, Content-Length, X-Timestamp

add_response_body_check(sub {
    my ($block, $body) = @_;

    my $expected = $block->wall or return;
    my $name = $block->name;

    ok(wait_for_children(), "$name - producers done");

    my @parts = wall_parts($body, \@F);
    my %key_index;
    @key_index{@K} = (0 .. $#K);

    my @odd = grep {
        join(',', sort keys %{$_->[2]{headers}})
            ne 'content-length,content-type,x-key,x-timestamp'
        || $_->[2]{headers}{'x-key'} !~ /^[A-Za-z0-9._~%-]+$/
    } @parts;
    is(scalar @odd, 0, "$name - every part: X-Key (safe), Content-Type, "
                       . "Content-Length, X-Timestamp")
        or diag(Test::More::explain([map { $_->[2]{headers} } @odd]));

    my @got = squeeze(map {
        $_->[0] . ':' . (defined $_->[1] ? $key_index{$_->[1]} // 'x' : 'u')
    } @parts);
    my @want = split ' ', $expected;

    # from the last time the first frame came (the producer sends it ahead
    # once; the cameras' latest frames of earlier blocks, which a partition
    # that starts finds, may come between)
    my ($from) = grep { $got[$_] eq $want[0] } reverse 0 .. $#got;
    splice @got, 0, $from // scalar @got;
    is("@got", "@want", "$name - frames and their keys, in order");
});

# "--- h2_wall: 0:0": the HTTP/2 wall "--- init" started got that part

add_response_body_check(sub {
    my ($block) = @_;

    my $want = $block->h2_wall or return;

    my ($pid, $file) = @H2;
    waitpid $pid, 0;

    open my $in, '<:raw', $file or die "$file: $!";
    my $got = do { local $/; <$in> };
    my ($head, $body) = split /\r\n\r\n/, $got, 2;

    like($head, qr{^HTTP/2 200 ?\r\n.*content-type: multipart/x-mixed-replace; boundary=kafka-stream-frame}is,
         $block->name . " - HTTP/2 response headers");

    my ($f, $k) = split /:/, $want;
    my @parts = wall_parts($body // '', \@F);
    ok((grep { $_->[0] == $f && defined $_->[1] && $_->[1] eq $K[$k] } @parts),
       $block->name . " - the frame and its key over HTTP/2")
        or diag(Test::More::explain([map { [$_->[0], $_->[2]{headers}] } @parts]));
});

# "--- slow_reader": what the slow wall of "--- init" read (%main::Slow)

add_response_body_check(sub {
    my ($block) = @_;

    return if !$block->slow_reader;

    my $name = $block->name;
    my @parts = @{$Slow{parts} || []};
    my @busy = grep { $_->[1] eq 'busy' } @parts;
    my @quiet = grep { $_->[1] eq 'quiet' } @parts;

    is($Slow{error}, undef, "$name - the slow wall read its parts");
    is(scalar @quiet, 1, "$name - the quiet camera's one frame came");
    cmp_ok(scalar @busy, '<', 40,
           "$name - the busy camera's frames were dropped (newest wins)");
    is($busy[-1][0], 39, "$name - the busy camera's newest frame came")
        or diag(Test::More::explain([map { "$_->[0]:$_->[1]" } @parts]));
    ok(@parts >= 2 && $parts[-1][1] ne $parts[-2][1],
       "$name - the quiet frame came in the round after the stall, beside "
       . "the busy camera's newest")
        or diag(Test::More::explain([map { "$_->[0]:$_->[1]" } @parts]));
    cmp_ok($Slow{drops}, '>', 0, "$name - the status counts the drops");
});

run_tests();


# the wall of "--- init" in TEST 4: a reader that stops reading while the
# busy camera sends 40 large frames, the quiet one 1 in the middle of them

sub slow_wall {
    my $port = $ENV{TEST_NGINX_SERVER_PORT};
    my $s;

    socket($s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    # a small window: the server's socket fills with one frame
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!";
    connect($s, pack_sockaddr_in($port, inet_aton('127.0.0.1')))
        or die "connect: $!";

    syswrite $s, "GET /wall?keys=busy,quiet HTTP/1.0\r\nHost: localhost\r\n\r\n";

    my $sel = IO::Select->new($s);
    my $raw = '';

    # every worker reads the partition's end first (a key of no camera)
    produce_seen(2, 'dbtech', $F[0], key => 'other');

    # the response header: the wall is there
    while ($raw !~ /\r\n\r\n/) {
        $sel->can_read(5) or die "no response header\n";
        sysread($s, $raw, 65536, length $raw) or die "closed\n";
    }

    # the worker of the wall reads the keys' partition (the other need
    # not), once it knows the topic's partitions, and has taken a message
    my $deadline = time + 30;
    until (messages_per_worker('dbtech')) {
        die "no worker reads dbtech for the wall\n" if time > $deadline;
        sleep 0.05;
    }
    wait_ready(2);
    my %before = messages_per_worker('dbtech');

    produce_batch('dbtech', [(map { [$B[$_], key => 'busy'] } 0 .. 19),
                             [$B[40], key => 'quiet'],
                             (map { [$B[$_], key => 'busy'] } 20 .. 39)]);

    # every worker has them all, and the wall's has dropped some of them
    $deadline = time + 30;
    for (;;) {
        my $st = status_json();
        my %now = messages_per_worker('dbtech');
        last if !grep({ ($now{$_} // 0) < $before{$_} + 41 } keys %before)
                && $st->{streams}[0]{drops} > 0;
        die "the frames never arrived, or nothing was dropped\n"
            if time > $deadline;
        sleep 0.05;
    }

    $Slow{drops} = status_json()->{streams}[0]{drops};

    # now read: what waited comes, the busy camera's newest last
    my %index;
    @index{@B} = (0 .. $#B);
    $deadline = time + 20;

    for (;;) {
        my ($head, $body) = split /\r\n\r\n/, $raw, 2;
        my @parts = map { [$index{$_->{body}} // -1, part_key($_) // ''] }
                    multipart_parts($body // '', 'kafka-stream-frame');
        $Slow{parts} = \@parts;
        last if grep({ $_->[0] == 40 } @parts) && grep({ $_->[0] == 39 } @parts);
        if (time > $deadline) {
            $Slow{error} = 'the busy camera\'s last frame and the quiet '
                           . 'one never both came';
            last;
        }
        next if !$sel->can_read(1);
        sysread($s, $raw, 1 << 20, length $raw) or last;
    }

    close $s;
}


__DATA__

=== TEST 1: every key, in one stream: each part says its key, byte for byte
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /wall { kafka_stream_wall dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech', [map { [$F[$_], key => $K[$_]] } 0 .. 5]);
--- request
GET /wall
--- abort
--- timeout: 4
--- response_headers
Content-Type: multipart/x-mixed-replace; boundary=kafka-stream-frame
Cache-Control: no-cache, no-store
X-Accel-Buffering: no
!Content-Length
--- response_body_like eval
qr{\A--kafka-stream-frame\r\nX-Key: cam1\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n}
--- wall: 0:0 1:1 2:2 3:3 4:4 5:5
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: ?keys= shows those keys only; a key never seen yet comes when it does
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /wall { kafka_stream_wall dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_when_watched(1, 'dbtech',
                     [[$F[6], key => 'cam1'], [$F[7], key => 'cam 2'],
                      [$F[8], key => 'cam1x'], [$F[9], key => 'cam1'],
                      [$F[10], key => "cam\r\nX-Evil: 1"],
                      [$F[11], key => 'cam 2']]);
--- request
GET /wall?keys=cam1,cam%0D%0AX-Evil%3A%201,cam1,never
--- abort
--- timeout: 4
--- wall: 6:0 9:0 10:2



=== TEST 3: a key seen before the wall comes at once; one seen later joins
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /wall { kafka_stream_wall dbtech; }
    location /status { kafka_stream_status; }
--- init
produce_seen(2, 'dbtech', $F[0], key => 'early');
produce_when_watched(1, 'dbtech', [[$F[1], key => 'late'],
                                   [$F[2], key => 'early']]);
--- request
GET /wall
--- abort
--- timeout: 4
--- wall: 0:6 1:7 2:6



=== TEST 4: a slow reader: the busy camera's frames are dropped, the quiet one's is not
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
    kafka_stream_notsent_lowat 16k;
--- config
    location /wall { kafka_stream_wall dbtech; }
    location /status { kafka_stream_status; }
--- init
main::slow_wall();
--- request
GET /status
--- slow_reader: yes
--- no_error_log
[alert]
[crit]



=== TEST 5: bad keys values: 400, one line of reason each
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /wall { kafka_stream_wall dbtech; kafka_stream_wall_keys 3; }
--- request eval
["GET /wall?keys=", "GET /wall?keys=a,,b", "GET /wall?keys=a,",
 "GET /wall?keys=,a", "GET /wall?keys=a%2", "GET /wall?keys=a%zz",
 "GET /wall?keys=a,b,c,d", "GET /wall?keys=" . ("x" x 4097),
 "GET /wall?keys=a,b,a,c"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 200]
--- response_headers eval
[("Content-Type: text/plain") x 8,
 "Content-Type: multipart/x-mixed-replace; boundary=kafka-stream-frame"]
--- response_body_like eval
[("^keys: a key is empty \\(keys=a,b,c: each one percent-encoded\\)\n\\z") x 4,
 ("^keys: malformed percent-encoding \\(a \"%\" must be followed by two hex digits\\)\n\\z") x 2,
 "^keys: more than 3 keys \\(kafka_stream_wall_keys\\)\n\\z",
 "^keys: a key is longer than 4096 bytes\n\\z",
 "^--kafka-stream-frame\r\n"]
--- abort
--- timeout: 3



=== TEST 6: HTTP/2
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    server {
        listen unix:$TEST_NGINX_H2_SOCKET http2;
        location /wall { kafka_stream_wall dbtech; kafka_stream_idle_resend 0; }
    }
--- config
    location /status { kafka_stream_status; }
--- init
produce_seen(2, 'dbtech', $F[3], key => $K[3]);
my $file = File::Temp->new(UNLINK => 0)->filename;
my $pid = fork;
if ($pid == 0) {
    { exec 'curl', '-s', '-i', '--http2-prior-knowledge', '-m', '3',
           '--unix-socket', $ENV{TEST_NGINX_H2_SOCKET}, '-o', $file,
           'http://localhost/wall' };
    POSIX::_exit(127);
}
@main::H2 = ($pid, $file);
--- request
GET /status
--- h2_wall: 3:3



=== TEST 7: a reload ends the wall with its closing boundary
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /wall { kafka_stream_wall dbtech; kafka_stream_idle_resend 200ms; }
    location /status { kafka_stream_status; }
--- init
produce_seen(2, 'dbtech', $F[4], key => 'cam1');
produce_seen(2, 'dbtech', $F[5], key => 'cam 2');
# the idle re-sends go on: a reload ends the wall once both keys came
my $pid = fork;
if ($pid == 0) {
    my $deadline = time + 30;
    until (time > $deadline) {
        my $status = status_json();
        last if $status && $status->{streams}[0]{walls} == 1
                && $status->{streams}[0]{parts_sent} >= 4;
        select undef, undef, undef, 0.02;
    }
    open my $in, '<', "$Test::Nginx::Util::ServRoot/logs/nginx.pid"
        or POSIX::_exit(1);
    kill 'HUP', scalar <$in>;
    POSIX::_exit(0);
}
push @KafkaStream::Test::Children, $pid;
--- request
GET /wall?keys=cam1,cam%202
--- timeout: 10
--- response_body_like eval
qr{\A(?:--kafka-stream-frame\r\n(?:X-Key: cam1\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$::F[4]\E|X-Key: cam%202\r\nContent-Type: image/png\r\nContent-Length: \d+\r\nX-Timestamp: [\d.]+\r\n\r\n\Q$::F[5]\E)\r\n){4,}--kafka-stream-frame\r\n\r\n--kafka-stream-frame--\r\n\z}s
--- no_error_log
[alert]
[crit]



=== TEST 8: the status counts a wall as one wall, not as viewers; HEAD
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /wall { kafka_stream_wall dbtech; }
    location /status { kafka_stream_status; }
--- init
my $pid = start_viewer('/wall', File::Temp->new->filename, 3);
push @KafkaStream::Test::Children, $pid;
status_until(sub { ($_[0]{streams}[0]{walls} // 0) == 1 })
    or die "the wall is not counted\n";
--- request eval
["GET /status", "HEAD /wall"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr{"viewers":0,"walls":1,}, qr{^$}]
