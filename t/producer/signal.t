# SIGINT/SIGTERM: stop reading, flush what was produced, print the summary
# and exit 0 when every produced frame was delivered.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use Test::More;

use KafkaStream::Test topics => ['int:1', 'term:1'], own_broker => 1;
use Producer;

my $dir = tempdir(CLEANUP => 1);
my $video = make_video("$dir/long.mp4", duration => 30, fps => 10,
                       size => '160x120');

for my $sig (qw(INT TERM)) {
    my $topic = lc $sig;
    subtest "SIG$sig" => sub {
        my $h = start_producer('-b', kafka_brokers(), '-t', $topic,
                               '--progress', $video);

        # wait until the progress line shows delivered frames, then
        # interrupt mid-stream
        my $seen = poll_until(15, sub {
            $h->{run}->pump_nb;
            my @n = $h->{err} =~ /(\d+) frames sent/g;
            return @n && $n[-1] >= 5;
        });
        ok($seen, 'frames arrive while the producer runs');

        # a hung broker keeps frames in flight when the signal comes (a
        # second's worth), so only a real flush gets them all delivered:
        # the producer waits for the broker, which runs again a second
        # after the signal
        broker_control('pause 1');
        poll_until(1, sub { $h->{run}->pump_nb; 0 });
        $h->{run}->signal($sig);
        ok(!poll_until(1, sub { $h->{run}->pump_nb; !$h->{run}->pumpable }),
           'the producer waits for the hung broker');
        broker_control('resume 1');

        my $r = finish_producer($h);
        is($r->{signal}, 0, 'not killed by the signal');
        is($r->{rc}, 0, 'exit 0') or diag $r->{err};
        cmp_ok($r->{elapsed}, '<', 25, 'stopped long before the end');

        my ($sent) = $r->{err} =~ /(\d+) frames sent, 0 failed/;
        note $r->{err};
        ok(defined $sent, 'summary printed') or diag $r->{err};

        my @m = consume($topic);
        is(scalar @m, $sent, "all $sent sent frames are in the topic");
        cmp_ok(scalar @m, '<', 300, 'and not the whole video');
        is_deeply([map { header($_, 'frame') } @m], [0 .. $#m],
                  'without a gap');
    };
}

subtest 'SIGINT while an input is still being opened' => sub {
    # a server that accepts the connection and never answers
    my $server = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Proto => 'tcp')
        or die "listen: $!";
    my $url = 'http://127.0.0.1:' . $server->sockport . '/stalled.mp4';

    my $h = start_producer('-b', kafka_brokers(), '-t', 'int', $url);
    # the producer is waiting once the connection is in the backlog
    my $client = poll_until(10, sub {
        my $rin = '';
        vec($rin, fileno($server), 1) = 1;
        select(my $rout = $rin, undef, undef, 0) > 0 ? $server->accept : undef;
    });
    ok($client, 'the producer connected');
    $h->{run}->signal('INT');

    my $r = finish_producer($h);
    is($r->{rc}, 0, 'exit 0: stopping is no failure of the input')
        or diag $r->{err};
    unlike($r->{err}, qr/cannot open/, 'no error about the input');
    cmp_ok($r->{elapsed}, '<', 10, 'the blocked open was interrupted');
};

done_testing;
