package Fleet;

# Helpers for the fleet tests (t/fleet): which partitions each worker
# reads, where a key lives, and one viewer's first frame.
#
#   consumed()                  { pid => { topic => [partitions] } }, from
#                               /status (every worker's "consuming")
#   consumed_all($topic)        the partitions of $topic that some worker
#                               reads, sorted
#   consumed_by($pid, $topic)   those one worker reads
#   consumed_is($topic, \@want, $seconds)
#                               true once consumed_all($topic) is @want
#   key_partitions($topic, \@keys, %produce_options)
#                               { key => partition } where the producer's
#                               partitioner put each key: one small frame
#                               per key is produced (config => [...] for
#                               another partitioner), then read back
#   keys_apart($topic, $n)      ($at, @keys): $n keys of cam1 .. cam16 on
#                               $n different partitions, and the
#                               key_partitions() of all 16
#   open_viewer($uri)           a viewer connection, reading in the
#                               background (a child); peek_viewer($v)
#                               the bytes it got so far; close_viewer($v)
#                               closes it and returns them all
#   first_part($uri, $seconds)  connects, reads until one part is whole;
#                               (body, seconds from connect) or () on
#                               timeout
#   parts_of($bytes)            the bodies of the complete parts of a
#                               response (head included)
#   stamps_of($bytes)           their X-Timestamp headers

use strict;
use warnings;

use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

use KafkaStream::Test ();
use Reliability qw(status port until_true start_capture stop_capture);

our @EXPORT = qw(consumed consumed_all consumed_by consumed_is
                 key_partitions keys_apart open_viewer peek_viewer close_viewer
                 first_part
                 parts_of stamps_of);


sub consumed {
    my $st = status() or return {};
    return { map { ($_->{pid} => $_->{consuming} || {}) }
                 @{$st->{workers}} };
}


sub consumed_all {
    my ($topic) = @_;
    my %p;
    for my $w (values %{consumed()}) {
        $p{$_} = 1 for @{$w->{$topic} || []};
    }
    return sort { $a <=> $b } keys %p;
}


sub consumed_by {
    my ($pid, $topic) = @_;
    return @{consumed()->{$pid}{$topic} || []};
}


sub consumed_is {
    my ($topic, $want, $seconds) = @_;
    return until_true($seconds, sub { "@{[consumed_all($topic)]}" eq "@$want" },
                      0.05);
}


sub key_partitions {
    my ($topic, $keys, %opts) = @_;
    my @keys = @$keys;
    my @f = KafkaStream::Test::make_frames(1, format => 'jpeg',
                                           size => '16x16');

    KafkaStream::Test::produce_batch($topic,
                                     [map { [$f[0], key => $_] } @keys],
                                     %opts);

    my %want = map { ($_ => 1) } @keys;
    my %at;

    for my $m (KafkaStream::Test::consume($topic, from => 'beginning')) {
        $at{$m->{key}} = $m->{partition} if defined $m->{key}
                                            && $want{$m->{key}};
    }

    die "key_partitions: not all keys found\n" if keys %at != @keys;
    return \%at;
}


sub open_viewer {
    my ($uri) = @_;
    return start_capture("GET $uri HTTP/1.1\r\nHost: localhost\r\n\r\n");
}


sub keys_apart {
    my ($topic, $n) = @_;
    my $at = key_partitions($topic, [map { "cam$_" } 1 .. 16]);
    my (@keys, %seen);

    for (sort keys %$at) {
        push @keys, $_ if !$seen{$at->{$_}}++;
    }

    die "keys_apart: fewer than $n partitions hold keys\n" if @keys < $n;
    return ($at, @keys[0 .. $n - 1]);
}


sub peek_viewer {
    my ($v) = @_;
    open my $in, '<:raw', $v->{file}->filename or return '';
    local $/;
    my $data = <$in>;
    close $in;
    return $data // '';
}


sub close_viewer {
    my ($v) = @_;
    return stop_capture($v);
}


sub parts_of {
    my ($bytes) = @_;
    $bytes =~ s/\A.*?\r\n\r\n//s or return ();
    return map { $_->{body} }
           KafkaStream::Test::multipart_parts($bytes, 'kafka-stream-frame');
}


sub stamps_of {
    my ($bytes) = @_;
    $bytes =~ s/\A.*?\r\n\r\n//s or return ();
    return map { $_->{headers}{'x-timestamp'} }
           KafkaStream::Test::multipart_parts($bytes, 'kafka-stream-frame');
}


sub first_part {
    my ($uri, $seconds) = @_;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                  Timeout => 2)
        or return ();
    binmode $s;
    syswrite $s, "GET $uri HTTP/1.1\r\nHost: localhost\r\n\r\n";

    my ($buf, $sel, $deadline) = ('', IO::Select->new($s),
                                  $t0 + ($seconds // 3));
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $buf, 65536, length $buf;
        last if !$n;
        my @p = parts_of($buf);
        if (@p) {
            my $at = time - $t0;
            close $s;
            return ($p[0], $at);
        }
    }

    close $s;
    return ();
}


1;
