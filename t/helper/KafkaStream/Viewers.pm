package KafkaStream::Viewers;

# Helpers for the module's stream tests, on top of KafkaStream::Test:
#
#   status_json()                       the module's /status, decoded
#   watched()                           viewers and walls connected, over
#                                       all workers
#   consuming()                         partitions the busiest worker reads
#   messages_per_worker($topic)         messages taken, by pid, of the
#                                       workers that read $topic now
#   wait_ready($workers)                waits until that many workers run
#                                       and each that reads a partition has
#                                       taken a message from Kafka (a worker
#                                       reads only what its viewers need)
#   produce_seen($workers, $topic, $bytes, %opts)
#                                       once they are ready, produces and
#                                       waits until every worker that reads
#                                       the topic has it
#   produce_when_watched($n, $topic, \@payloads, interval => 0, %opts)
#                                       a child that waits until nginx has
#                                       $n viewers, then produces; so no
#                                       frame is sent before anyone watches;
#                                       a payload is bytes or [bytes, %opts];
#                                       one produce takes ~0.1 s, which is
#                                       spacing enough without an interval
#   start_viewer($uri, $file, $seconds) a background curl saving the stream
#   finish_viewer($pid, $file)          waits for it; returns the bytes
#   timed_parts($uri, $seconds)         reads a stream until it ends or for
#                                       $seconds; for every complete part
#                                       { at => seconds after the request,
#                                       body => its bytes }
#   frame_indexes($body, \@frames)      for every complete part, the index
#                                       of its image in @frames, or -1
#   squeeze(@list)                      consecutive repeats removed
#   image_info($bytes)                  "codec WxH" of an image ffmpeg
#                                       decodes whole, else "undecodable"
#   frames_check(\@frames)              a check for add_response_body_check:
#                                       waits for the block's producers, and
#                                       with "--- frames: 1 2 3" compares
#                                       the frames the response carried,
#                                       after what came before the first
#                                       expected one and the re-sends
#   status_until(sub { $_[0]{...} })    waits until the code, given the
#                                       status, returns true: true, or false
#                                       after 10 s
#   replays()                           replay consumers alive in nginx
#   after_log(qr/.../, sub { ... })     a child that runs the code once
#                                       error.log has a matching line
#   old_worker_exited()                 waits until error.log says that a
#                                       worker exited with code 0: true, or
#                                       false after 30 s
#
# The /status location must be configured as "location /status
# { kafka_stream_status; }" for the status functions and replays().

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use File::Temp ();
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);

use KafkaStream::Test ();

our @EXPORT = qw(status_json watched wait_ready produce_seen
                 produce_when_watched start_viewer
                 finish_viewer timed_parts frame_indexes squeeze
                 frames_check status_until replays after_log
                 old_worker_exited messages_per_worker image_info);

our $Boundary = 'kafka-stream-frame';


# exported to the test and to Test::Nginx::Util, where "--- init" runs

sub import {
    my $caller = caller;

    no strict 'refs';

    for my $pkg ($caller, 'Test::Nginx::Util') {
        *{"${pkg}::$_"} = \&{$_} for @EXPORT;
    }
}


sub port {
    return $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
}


sub http_get {
    my ($uri) = @_;

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => port(), Timeout => 2)
        or return undef;

    print $sock "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";

    local $/;
    my $response = <$sock>;
    close $sock;

    return undef if !defined $response;
    my ($head, $body) = split /\r\n\r\n/, $response, 2;
    return $head =~ m{^HTTP/1\.\d 200} ? $body : undef;
}


sub status_json {
    my $body = http_get('/status');
    return undef if !defined $body;
    return eval { decode_json($body) };
}


sub watched {
    my $status = status_json() or return 0;
    my $n = 0;
    $n += $_->{viewers} + ($_->{walls} // 0) for @{$status->{streams}};
    return $n;
}


# the most partitions a worker reads (the one with the viewers)
sub consuming {
    my $status = status_json() or return 0;
    my @n = map { $_->{partitions} } @{$status->{workers}};
    return @n ? (sort { $b <=> $a } @n)[0] : 0;
}


# messages each worker took from Kafka (frames and skipped), by pid: of
# the workers that read $topic now, or without it, that read anything (a
# worker reads a partition only while a viewer needs it)
sub messages_per_worker {
    my ($topic) = @_;
    my $status = status_json() or return ();
    return map { ($_->{pid} => $_->{frames_in} + $_->{skipped}) }
           grep { defined $topic ? exists $_->{consuming}{$topic}
                                 : $_->{partitions} }
           @{$status->{workers}};
}


sub wait_ready {
    my ($workers) = @_;

    my $deadline = time + 30;

    for (;;) {
        my $status = status_json();
        my %n = messages_per_worker();
        return if $status && @{$status->{workers}} >= $workers
                  && !grep { $_ == 0 } values %n;
        die "the workers never took a message\n" if time > $deadline;
        sleep 0.02;
    }
}


# a worker that starts reading a partition later finds what was produced
# before (it starts a few messages back): only those reading it now wait
sub produce_seen {
    my ($workers, $topic, $payload, %opts) = @_;

    wait_ready($workers);

    my %before = messages_per_worker($topic);
    my $deadline = time + 30;

    send_payload($topic, $payload, %opts);

    for (;;) {
        my %now = messages_per_worker($topic);
        return if !grep { $now{$_} <= ($before{$_} // 0) } keys %before;
        die "the workers never got the frame\n" if time > $deadline;
        sleep 0.02;
    }
}


# a payload is the bytes, or [bytes, produce options of its own]
sub send_payload {
    my ($topic, $payload, %opts) = @_;

    if (ref $payload eq 'ARRAY') {
        my ($bytes, %own) = @$payload;
        KafkaStream::Test::produce($topic, $bytes, %opts, %own);
        return;
    }

    KafkaStream::Test::produce($topic, $payload, %opts);
}


# A worker that starts reading a partition looks for the end of its log
# first, and takes the frames before it only as the latest of each key.
# So the first payload goes once more ahead, until every worker that reads
# the topic for the viewers has it.

sub produce_when_watched {
    my ($n, $topic, $payloads, %opts) = @_;

    my $interval = delete $opts{interval} // 0;

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        my $ok = eval {
            my $deadline = time + 30;

            while (watched() < $n) {
                die "nginx never had $n viewers\n" if time > $deadline;
                sleep 0.02;
            }

            my %before;

            until (%before = messages_per_worker($topic)) {
                die "no worker reads $topic for the viewers\n"
                    if time > $deadline;
                sleep 0.02;
            }

            send_payload($topic, $payloads->[0], %opts);

            for (;;) {
                my %now = messages_per_worker($topic);
                last if !grep { ($now{$_} // 0) <= $before{$_} }
                              keys %before;
                die "the workers never got the first frame\n"
                    if time > $deadline;
                sleep 0.02;
            }

            for my $i (0 .. $#$payloads) {
                sleep $interval if $i > 0;
                send_payload($topic, $payloads->[$i], %opts);
            }

            1;
        };

        warn $@ if !$ok;
        POSIX::_exit($ok ? 0 : 1);
    }

    push @KafkaStream::Test::Children, $pid;

    return $pid;
}


sub start_viewer {
    my ($uri, $file, $seconds) = @_;

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        { exec 'curl', '-s', '-m', $seconds, '-o', $file,
               'http://127.0.0.1:' . port() . $uri; }
        POSIX::_exit(127);
    }

    return $pid;
}


sub finish_viewer {
    my ($pid, $file) = @_;

    waitpid $pid, 0;

    open my $in, '<:raw', $file or return '';
    local $/;
    my $data = <$in>;
    close $in;

    return $data // '';
}


# a part is complete when the boundary after it arrives: that is its time

sub timed_parts {
    my ($uri, $seconds) = @_;

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => port(), Timeout => 2)
        or return ();

    my $start = time;
    my $deadline = $start + $seconds;
    my $sel = IO::Select->new($sock);
    my ($raw, @at) = ('');

    print $sock "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";

    while ((my $left = $deadline - time) > 0) {
        last if !$sel->can_read($left);
        my $n = sysread $sock, $raw, 65536, length $raw;
        last if !$n;

        my $ends = () = $raw =~ /\r\n--\Q$Boundary\E/g;
        push @at, time - $start while @at < $ends;
    }

    close $sock;

    my (undef, $body) = split /\r\n\r\n/, $raw, 2;
    my @parts = KafkaStream::Test::multipart_parts($body // '', $Boundary);

    return map { { at => $at[$_], body => $parts[$_]{body} } } 0 .. $#parts;
}


sub frame_indexes {
    my ($body, $frames) = @_;

    my %index;
    @index{@$frames} = (0 .. $#$frames);

    return map { $index{$_->{body}} // -1 }
           KafkaStream::Test::multipart_parts($body, $Boundary);
}


sub frames_check {
    my ($frames) = @_;

    return sub {
        my ($block, $body) = @_;

        # what a block produced must not spill into the next one
        Test::More::ok(KafkaStream::Test::wait_for_children(),
                       $block->name . " - producers done");

        my $expected = $block->frames or return;
        my @want = split ' ', $expected;
        my @got = squeeze(frame_indexes($body, $frames));
        my @all = @got;

        shift @got while @got && $got[0] != $want[0];
        Test::More::is("@got", "@want", $block->name . " - frames in order")
            or Test::More::diag("all the frames received: @all");
    };
}


sub status_until {
    my ($code) = @_;
    my $deadline = time + 10;

    until ($code->(status_json() // {})) {
        return 0 if time > $deadline;
        sleep 0.02;
    }

    return 1;
}


# the Prometheus status says it
sub replays {
    my $text = http_get('/status?format=prometheus') // return -1;
    return $text =~ /^kafka_stream_replays (\d+)$/m ? $1 : -1;
}


# true once error.log has a line matching $re, false after $seconds
sub logged {
    my ($re, $seconds) = @_;
    my $deadline = time + $seconds;

    for (;;) {
        open my $in, '<', $Test::Nginx::Util::ErrLogFile or return 0;
        return 1 if grep { /$re/ } <$in>;
        close $in;
        return 0 if time > $deadline;
        sleep 0.02;
    }
}


sub after_log {
    my ($re, $code) = @_;

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        my $ok = eval {
            logged($re, 30) or die "never logged: $re\n";
            $code->();
            1;
        };
        warn $@ if !$ok;
        POSIX::_exit($ok ? 0 : 1);
    }

    push @KafkaStream::Test::Children, $pid;
}


sub old_worker_exited {
    return logged(qr/worker process \d+ exited with code 0/, 30);
}


# "codec WxH" of an image (ffprobe), once ffmpeg decoded all of it, else
# "undecodable"
sub image_info {
    my ($bytes) = @_;

    my $tmp = File::Temp->new(SUFFIX => '.img');
    binmode $tmp;
    print $tmp $bytes;
    close $tmp;

    system('ffmpeg', '-v', 'error', '-xerror', '-nostdin', '-i', "$tmp",
           '-f', 'null', '-') == 0
        or return 'undecodable';

    my $info = `ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 $tmp`;
    chomp $info;
    my ($codec, $w, $h) = split /,/, $info;

    return "$codec ${w}x$h";
}


sub squeeze {
    my @out;

    for (@_) {
        push @out, $_ if !@out || $out[-1] ne $_;
    }

    return @out;
}


1;
