# Hostile input for the producer, beyond t/producer/errors.t (missing
# file, text named .mp4, empty file, audio only, unreachable broker):
# truncated and corrupt video files, a corrupt header, a directory,
# /dev/null, refused and stalled URLs.  Each ends with a clear line and
# exit status 0 or 1 in bounded time, never a signal or a sanitizer
# report (build with "make SANITIZE=1" to run it under ASan/UBSan); what
# it says it sent is what the topic holds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../producer";

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Test::More;

use KafkaStream::Test topics => [map { "h$_:1" } 0 .. 20];
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $brokers = kafka_brokers();

my %src;
$src{mp4} = make_video("$dir/moov-last.mp4", duration => 3, fps => 10,
                       size => '160x120');
$src{fast} = make_video("$dir/faststart.mp4", duration => 3, fps => 10,
                        size => '160x120', args => ['-movflags', '+faststart']);
$src{ts} = make_video("$dir/src.ts", duration => 3, fps => 10,
                      size => '160x120', args => ['-f', 'mpegts']);

sub slurp_file {
    my ($path) = @_;
    open my $in, '<:raw', $path or die "$path: $!";
    local $/;
    return scalar <$in>;
}

sub write_file {
    my ($name, $data) = @_;
    open my $out, '>:raw', "$dir/$name" or die "$dir/$name: $!";
    print $out $data;
    close $out;
    return "$dir/$name";
}

# the same bytes every run
srand 11;
sub noise { join '', map { chr int rand 256 } 1 .. $_[0] }

sub overwrite {
    my ($data, $from, $len) = @_;
    substr($data, $from, $len) = noise($len);
    return $data;
}

my %data = map { $_ => slurp_file($src{$_}) } keys %src;
my $half = sub { substr $_[0], 0, length($_[0]) / 2 };

# [what, input, the error when it cannot be played at all]
my @cases = (
    ['truncated mp4 (index at the end)',
     write_file('trunc.mp4', $half->($data{mp4})), qr/cannot open/],
    ['truncated mp4 (index first)',
     write_file('trunc-fast.mp4', $half->($data{fast}))],
    ['truncated MPEG-TS', write_file('trunc.ts', $half->($data{ts}))],
    ['MPEG-TS with its middle third overwritten',
     write_file('corrupt.ts', overwrite($data{ts}, length($data{ts}) / 3,
                                        length($data{ts}) / 3))],
    ['mp4 with 2000 bytes of its frames overwritten',
     write_file('corrupt.mp4', overwrite($data{fast}, length($data{fast}) / 2,
                                         2000))],
    ['mp4 with a garbage header',
     write_file('badhead.mp4', overwrite($data{fast}, 0, 64)), qr/cannot open/],
    ['a directory', $dir, qr/cannot open: Is a directory/],
    ['/dev/null', '/dev/null', qr/cannot open/],
    ['a refused http:// URL', 'http://127.0.0.1:1/video.mp4',
     qr/cannot open: Connection refused/],
    ['a refused rtsp:// URL', 'rtsp://127.0.0.1:1/cam',
     qr/cannot open: Connection refused/],
);

my $topic = 0;

for my $case (@cases) {
    my ($what, $input, $cannot) = @$case;
    my $t = 'h' . $topic++;

    subtest $what => sub {
        my $r = run_producer('-b', $brokers, '-t', $t, '--no-pace', $input);
        is($r->{signal}, 0, 'not killed by a signal');
        unlike($r->{err}, qr/AddressSanitizer|LeakSanitizer|runtime error:/,
               'no sanitizer report');
        ok($r->{rc} == 0 || $r->{rc} == 1, "exit 0 or 1 ($r->{rc})");
        cmp_ok($r->{elapsed}, '<', 20, 'in bounded time');
        like($r->{err}, qr/\d+ frames sent, \d+ failed/, 'the summary');

        if ($cannot) {
            is($r->{rc}, 1, 'exit 1: nothing can be played');
            like($r->{err}, qr/\Q$input\E: $cannot/, 'says why, naming it');
        }

        if ($r->{rc} == 1) {
            like($r->{err}, qr/kafka-stream-producer: \Q$input\E: /,
                 'the error names the input');
        }

        my ($sent) = $r->{err} =~ /(\d+) frames sent/;
        my @m = consume($t);
        is(scalar @m, $sent // -1, "the topic holds the $sent frames sent");
        note $r->{err};
    };
}

# a server that accepts and then never says anything: a camera that hangs
subtest 'a stalled http:// and rtsp:// server' => sub {
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Listen => 16, ReuseAddr => 1)
        or die "listen: $!";
    my $port = $srv->sockport;

    my $pid = fork;
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        my @keep;
        while (my $c = $srv->accept) { push @keep, $c }
        POSIX::_exit(0);
    }
    close $srv;

    # both at once: the deadline is paid once
    my %h = map { ($_ => start_producer('-b', $brokers, '--no-pace',
                                        '--io-timeout', 2, $_)) }
            "http://127.0.0.1:$port/video.mp4", "rtsp://127.0.0.1:$port/cam";

    # IPC::Run sees an exit only when it reads the pipes: pump them
    poll_until(20, sub {
        for my $h (grep { $_->{run}->pumpable } values %h) {
            eval { $h->{run}->pump_nb };
        }
        return !grep { $_->{run}->pumpable } values %h;
    });

    for my $url (sort keys %h) {
        my $h = $h{$url};
        if ($h->{run}->pumpable) {
            $h->{run}->kill_kill;
            fail("$url: still waiting after 20 s: no I/O timeout");
            next;
        }
        my $r = finish_producer($h);
        is($r->{rc}, 1, "$url: exit 1");
        like($r->{err}, qr/\Q$url\E: cannot open: no data for 2 s/,
             "$url: names the input and the timeout");
        cmp_ok($r->{elapsed}, '>=', 2, "$url: not before the timeout");
    }

    kill 'KILL', $pid;
    waitpid $pid, 0;
};

done_testing;
