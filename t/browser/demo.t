# demo/run, what `make demo` runs after building: it starts an Apache
# Kafka broker, nginx with conf/nginx.conf and the producers, prints the
# URL, serves frames, says so when its port is taken, stops by itself
# with DEMO_DURATION, stops on Ctrl-C, and leaves nothing running.  A
# second run finds the frames of the first in its broker's storage.  With
# KAFKA_BROKERS it uses that cluster instead, starts no broker, and says
# how to create the topic when it is missing.  Each run uses the test's
# port; logs stay in build/t-browser/.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time);

use Demo qw(poll rgb bars luma_stddev);

my $port = $ENV{TEST_NGINX_PORT} || 1984;
my $bin = $ENV{TEST_NGINX_KAFKA_BIN} || Demo::root() . '/build';


# 1. the port is taken: it says so and starts nothing

{
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $port, Listen => 1,
                                     ReuseAddr => 1)
        or BAIL_OUT("port $port is not free for this test: $!");

    my $demo = Demo->start(name => 'demo-busy', port => $port);
    my $rc = $demo->wait_exit(300);

    ok(defined $rc && $rc != 0, 'with its port taken, demo/run fails')
        or diag $demo->output;
    like($demo->output, qr/port $port is taken/, '... and says why');
    unlike($demo->output, qr/Open http/, '... and prints no URL');

    close $busy;
    is_deeply([$demo->leftovers], [], '... and leaves nothing running');
}


# 2. PNG, one camera, DEMO_DURATION: frames flow, then it stops by itself

my $png_time;

{
    my $demo = Demo->start(name => 'demo', port => $port, env => {
        DEMO_DURATION => 15, DEMO_FORMAT => 'png', DEMO_CAMERAS => 1 });

    ok($demo->wait_url(300), 'demo/run prints the URL')
        or diag $demo->output;
    like($demo->output, qr/Apache Kafka at 127\.0\.0\.1:\d+ in [\d.]+ s/,
         '... once its Kafka broker serves');
    unlike($demo->output, qr/kept in/, '... on new storage');

    my $snap = $demo->get('snapshot');
    is($snap->header("Content-Type"), "image/png", "the snapshot is a PNG")
        or diag $snap->status_line;
    cmp_ok(bars(rgb($snap->content)), '>=', 0.4,
           '... of camera 1\'s colour bars');

    my ($n, $types) = $demo->parts('stream', 25, 10);
    cmp_ok($n, '>=', 25, 'the stream sends frames');
    is_deeply([sort keys %$types], ['image/png'], '... all PNG');
    $png_time = time;

    my $stream = $demo->stream_status('dbtech') // {};
    is_deeply($stream->{keys}, ['cam1'], 'the status knows camera 1 only');

    my $rc = $demo->wait_exit(60);
    is($rc, 0, 'it stops by itself after DEMO_DURATION, exit status 0');
    like($demo->output, qr/DEMO_DURATION reached/, '... and says so');
    is_deeply([$demo->leftovers], [], '... and leaves nothing running');
}


# 3. again in the same directory, JPEG, two cameras, then Ctrl-C: the
#    whole process group gets SIGINT, as from a terminal

{
    my $demo = Demo->start(name => 'demo', port => $port, pgrp => 1,
                           env => { DEMO_CAMERAS => 2 });

    ok($demo->wait_url(300), 'a second run works')
        or diag $demo->output;
    like($demo->output, qr/Kafka's data from earlier runs is kept in/,
         '... on the broker\'s storage of the first');

    # the PNG frames of the first run are still in Kafka: camera 1's
    # frame of then, while JPEG frames come now.  Asked of each partition:
    # without partition= a worker that has no frame of cam1 yet asks
    # partition 0, and cam1 is in one of the two
    my @then = map {
        $demo->get(sprintf 'snapshot?id=cam1&partition=%d&at=%.3f',
                   $_, $png_time)
    } 0, 1;
    is(scalar(grep { ($_->header('Content-Type') // '') eq 'image/png' }
              @then), 1,
       '... which still holds the first run\'s frames')
        or diag join "\n", map { $_->status_line . ' '
                                 . $_->decoded_content } @then;

    # the status lists the keys the workers have read; an unfiltered
    # snapshot reads every partition, as the viewer page's first stream does
    $demo->get('snapshot');
    my $keys = poll(20, sub {
        my $s = $demo->stream_status('dbtech') or return undef;
        return @{ $s->{keys} || [] } == 2 ? $s->{keys} : undef;
    });
    is_deeply([sort @{ $keys || [] }], ['cam1', 'cam2'],
              'the status knows both cameras');

    my $snap = $demo->get('snapshot?id=cam2');
    is($snap->header('Content-Type'), 'image/jpeg',
       'the snapshot of camera 2 is a JPEG');
    my $cam2 = rgb($snap->content);
    ok($cam2 && bars($cam2) < 0.2 && luma_stddev($cam2) > 10,
       '... of another picture than camera 1\'s');

    my ($n, $types) = $demo->parts('cam?id=cam1', 25, 10);
    cmp_ok($n, '>=', 25, 'camera 1\'s stream sends frames');
    is_deeply([sort keys %$types], ['image/jpeg'], '... all JPEG');

    my $rc = $demo->stop('INT');
    is($rc, 130, 'Ctrl-C stops it (exit status 130)')
        or diag $demo->output;
    is_deeply([$demo->leftovers], [], '... and leaves nothing running');
}


# 4. KAFKA_BROKERS: a cluster of one's own (the suite's broker, else one
#    started here); without the topic the demo says how to create it,
#    with it the demo runs on that cluster and starts no broker

{
    my ($brokers, $guard) = cluster();
    my $topic = "demo-t-$$";
    my %env = (KAFKA_BROKERS => $brokers, DEMO_TOPIC => $topic,
               DEMO_CAMERAS => 1);

    my $demo = Demo->start(name => 'demo-cluster', port => $port,
                           env => \%env);
    my $rc = $demo->wait_exit(120);
    ok(defined $rc && $rc != 0, 'KAFKA_BROKERS without the topic: it fails')
        or diag $demo->output;
    like($demo->output, qr/the topic $topic is not on \Q$brokers\E/,
         '... and says why');
    like($demo->output, qr/^ +kafka-topics\.sh --bootstrap-server \S+ --create --topic $topic --partitions 2 --config retention\.ms=\d+/m,
         '... and how to create it with kafka-topics.sh');
    my ($create) = $demo->output =~ m{^ +build/(kafka-stream-topics -b .*)$}m;
    ok($create, '... or with kafka-stream-topics');
    is_deeply([$demo->leftovers], [], '... and leaves nothing running');

    is(system("$bin/$create"), 0, 'that kafka-stream-topics command works')
        or diag $create;

    $demo = Demo->start(name => 'demo-cluster', port => $port,
                        env => { %env, DEMO_DURATION => 60 });
    ok($demo->wait_url(300), 'with the topic the demo runs')
        or diag $demo->output;
    like($demo->output, qr/using the Kafka cluster at \Q$brokers\E \(topic $topic, 2 partition/,
         '... on that cluster');
    ok(!grep({ $_ eq 'broker' } $demo->started), '... and starts no broker')
        or diag join ' ', $demo->started;

    my ($n, $types) = $demo->parts('cam?id=cam1', 25, 10);
    cmp_ok($n, '>=', 25, 'camera 1\'s stream sends frames');

    is($demo->stop('TERM'), 143, 'SIGTERM stops it (exit status 143)');
    is_deeply([$demo->leftovers], [], '... and leaves nothing running');
    is(system("$bin/kafka-stream-topics", '-q', '-T', '10', '-b', $brokers,
              'wait'), 0, '... but the cluster, which still serves');

    system("$bin/kafka-stream-topics", '-q', '-b', $brokers, 'delete',
           $topic);
}

done_testing;


# the suite's broker (make test), else one started for this file, stopped
# when the guard goes

sub cluster {
    return ($ENV{KAFKA_STREAM_TEST_BROKERS}, undef)
        if $ENV{KAFKA_STREAM_TEST_BROKERS};

    my $dir = Demo::artifacts() . '/demo-kafka';
    system('rm', '-rf', $dir);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$dir.log";
        exec "$bin/kafka-stream-broker", '-q', '-d', $dir,
             '-o', "$dir.addr";
        die "exec: $!";
    }
    unlink "$dir.addr";
    my $addr = poll(180, sub {
        die "kafka-stream-broker exited: see $dir.log\n"
            if waitpid($pid, WNOHANG) == $pid;
        open my $f, '<', "$dir.addr" or return undef;
        my $a = <$f>;
        return $a && $a =~ /\n$/ ? $a : undef;
    }) or die "kafka-stream-broker did not start: see $dir.log\n";
    chomp $addr;
    return ($addr, Demo::Guard->new($pid));
}


package Demo::Guard;

sub new { bless { pid => $_[1] }, $_[0] }

sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    kill TERM => $self->{pid};
    waitpid $self->{pid}, 0;
}

