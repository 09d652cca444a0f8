# Walls at a size and a rate: ?width= (kafka_stream_sizes) and ?fps= apply
# to every camera of a wall.  Each camera's frames are made once per size,
# shared with the viewers and the other walls of that key and size; each
# camera keeps the rate on its own.  The parts are decoded (ffmpeg,
# ffprobe) to check their size; frames carry Kafka timestamps set by the
# producer (an hour old, at known spacings), by which they are told apart.

use Test::Nginx::Socket 'no_plan';
use KafkaStream::Test topics => ['ws1:1', 'ws2:1', 'ws3:1'];
use KafkaStream::Viewers;
use File::Temp ();
use POSIX ();
use Time::HiRes ();

our @J = make_frames(16, format => 'jpeg', size => '640x360');
our @P = make_frames(2, format => 'png', size => '640x360');
our $Base = (int(time) - 3600) * 1000;
our @Also;

no warnings 'once';
*Test::Nginx::Util::J = \@J;
*Test::Nginx::Util::P = \@P;
*Test::Nginx::Util::Base = \$Base;

master_on();
workers(1);
no_shuffle();
log_level('info');


# [frame, key => K, timestamp => Base + n * gap] for each index
sub stamped {
    my ($key, $gap, @idx) = @_;
    return map { [$J[$idx[$_]], key => $key, timestamp => $Base + $_ * $gap] }
               0 .. $#idx;
}


# a wall's parts by key: { key => [{ ms, info, body }] }
sub by_key {
    my ($body) = @_;
    my %k;

    for my $p (KafkaStream::Test::multipart_parts($body, 'kafka-stream-frame')) {
        my $key = $p->{headers}{'x-key'} // '?';
        my ($s) = ($p->{headers}{'x-timestamp'} // '') =~ /^(\d+\.\d{3})$/;
        push @{$k{$key}}, { ms => defined $s ? int($s * 1000 + 0.5) - $Base
                                             : undef,
                            body => $p->{body} };
    }

    return \%k;
}


sub size_of {
    my ($status, $width) = @_;
    my ($s) = grep { $_->{width} == $width } @{$status->{streams}[0]{sizes}};
    return $s // {};
}


# "--- sizes: a mjpeg 160x90, b mjpeg 160x90": each key's parts all decode
# to that; "--- stamps: a 0 5 10 14, b ..." (with "--- gap: 40"): each
# key's parts by timestamp, in order, repeats squeezed out, from the first
# one named; "--- spacing: 2000": each key's consecutive parts that far
# apart in Kafka time at least (but the last, held until nothing newer came)

add_response_body_check(sub {
    my ($block, $body) = @_;
    my $name = $block->name;
    my $k = by_key($body);

    ok(wait_for_children(), "$name - producers done");

    for my $want (split /,\s*/, $block->sizes // '') {
        my ($key, $kind) = split ' ', $want, 2;
        my %got;
        $got{image_info($_->{body})}++ for @{$k->{$key} || []};
        is(join(',', sort keys %got), $kind, "$name - $key: every part $kind");
    }

    my $gap = $block->gap // 100;

    for my $want (split /,\s*/, $block->stamps // '') {
        my ($key, @w) = split ' ', $want;
        my @ms = squeeze(map { $_->{ms} // -1 } @{$k->{$key} || []});
        my @idx = map { $_ % $gap ? "?$_" : $_ / $gap } @ms;
        shift @idx while @idx && $idx[0] ne $w[0];
        is("@idx", "@w", "$name - $key: the frames, by timestamp")
            or diag("timestamps: @ms");

        if (my $spacing = $block->spacing) {
            my @close = grep { $ms[$_] - $ms[$_ - 1] < $spacing } 1 .. $#ms - 1;
            is(scalar @close, 0,
               "$name - $key: parts at least $spacing ms apart in Kafka time")
                or diag("timestamps: @ms");
        }
    }

    for my $v (splice @Also) {
        my ($pid, $file, $uri, $kind) = @$v;
        my $got = finish_viewer($pid, $file);
        unlink $file;
        my %got;
        $got{image_info($_->{body})}++
            for KafkaStream::Test::multipart_parts($got =~ s/\A.*?\r\n\r\n//sr,
                                                   'kafka-stream-frame');
        is(join(',', sort keys %got), $kind, "$name - $uri: $kind");
    }

    if (my $code = $block->status_check) {
        my $check = eval "sub { my (\$status) = \@_; $code }" or die $@;
        $check->(status_json() // {});
    }
});

run_tests();

__DATA__

=== TEST 1: ?width=160: every camera's parts are 160x90 JPEGs (PNG in too), made once per frame and size, shared with a viewer of that size
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /wall { kafka_stream_wall ws1; kafka_stream_sizes 160 320; }
    location /cam { kafka_stream ws1; kafka_stream_key $arg_id;
                    kafka_stream_sizes 160 320; }
    location /status { kafka_stream_status; }
--- init
my $file = File::Temp->new(UNLINK => 0)->filename;
push @main::Also, [start_viewer('/cam?id=a&width=160', $file, 4), $file,
                   '/cam?id=a&width=160', 'mjpeg 160x90'];
# spaced as cameras at 5 fps: each frame is made before the next comes
produce_when_watched(2, 'ws1', [main::stamped('a', 100, 0 .. 4),
                                main::stamped('b', 100, 5 .. 9),
                                [$::P[0], key => 'c',
                                 timestamp => $::Base + 500]],
                     interval => 0.1);
--- request
GET /wall?width=160
--- abort
--- timeout: 4
--- sizes: a mjpeg 160x90, b mjpeg 160x90, c mjpeg 160x90
--- stamps: a 0 1 2 3 4, b 0 1 2 3 4, c 5
--- status_check
my $in = $status->{streams}[0]{frames_in};
my $s = main::size_of($status, 160);
is($s->{frames_made}, $in,
   "one frame made per frame in ($in), for the wall and the viewer of a");
is($s->{skipped} + $s->{failed}, 0, 'none skipped or failed');
--- no_error_log
[alert]
[crit]



=== TEST 2: ?fps=0.5, frames 400 ms apart under two keys: each camera 2 s apart in Kafka time, the newest winning, the last held back still coming; with a size too
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
--- config
    location /wall { kafka_stream_wall ws2; kafka_stream_sizes 320; }
    location /status { kafka_stream_status; }
--- init
# a wall at a size and a rate beside: a burst is made newest first, so its
# timestamps say little; its parts' size is what is checked
my $file = File::Temp->new(UNLINK => 0)->filename;
push @main::Also, [start_viewer('/wall?keys=a,b&fps=5&width=320', $file, 9),
                   $file, '/wall?keys=a,b&fps=5&width=320', 'mjpeg 320x180'];
# one produce at a time (some 0.1 s each): the admitted frames come in
# fetches of their own, and each goes (within a fetch the newest would
# win).  A held frame goes once nothing newer came for 2 s (1/fps): the
# producer would have to stall that long to break the spacing.
my @a = main::stamped('a', 400, 0 .. 14);
my @b = main::stamped('b', 400, 0 .. 14);
produce_when_watched(2, 'ws2', [map { ($a[$_], $b[$_]) } 0 .. 14]);
--- request
GET /wall?keys=a,b&fps=0.5
--- abort
--- timeout: 9
--- gap: 400
--- sizes: a mjpeg 640x360, b mjpeg 640x360
--- stamps: a 0 5 10 14, b 0 5 10 14
--- spacing: 200



=== TEST 3: bad ?fps= and ?width= on a wall: 400 with a one-line reason
--- http_config
    kafka_stream_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location /wall { kafka_stream_wall ws3; kafka_stream_sizes 160; }
--- request eval
["GET /wall?fps=0", "GET /wall?width=-1", "GET /wall?fps=x&keys=a"]
--- error_code eval
[400, 400, 400]
--- response_body_like eval
[qr/^fps: .*\n\z/, qr/^width: .*\n\z/, qr/^fps: .*\n\z/]
