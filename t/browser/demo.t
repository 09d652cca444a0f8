# demo/run, what `make demo` runs after building: it starts the broker,
# nginx with conf/nginx.conf and the producers, prints the URL, serves
# frames, says so when its port is taken, stops by itself with
# DEMO_DURATION, stops on Ctrl-C, and leaves nothing running.  Each run
# uses the test's port; logs stay in build/t-browser/.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Test::More;

use Demo qw(poll rgb bars luma_stddev);

my $port = $ENV{TEST_NGINX_PORT} || 1984;


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

{
    my $demo = Demo->start(name => 'demo', port => $port, env => {
        DEMO_DURATION => 15, DEMO_FORMAT => 'png', DEMO_CAMERAS => 1 });

    ok($demo->wait_url(300), 'demo/run prints the URL')
        or diag $demo->output;

    my $snap = $demo->get('snapshot');
    is($snap->header("Content-Type"), "image/png", "the snapshot is a PNG")
        or diag $snap->status_line;
    cmp_ok(bars(rgb($snap->content)), '>=', 0.4,
           '... of camera 1\'s colour bars');

    my ($n, $types) = $demo->parts('stream', 25, 10);
    cmp_ok($n, '>=', 25, 'the stream sends frames');
    is_deeply([sort keys %$types], ['image/png'], '... all PNG');

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
    my $demo = Demo->start(name => 'demo', port => $port, pgrp => 1);

    ok($demo->wait_url(300), 'a second run works')
        or diag $demo->output;

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

done_testing;
