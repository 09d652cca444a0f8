#!/usr/bin/perl

# Churn: --cycles (connect, read a frame or --max-frames, close, again),
# --abort-mid-frame (leave in the middle of a part), seen from both the
# client's summary and the server's log.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use BenchLoad;
use IO::Select;
use Test::More;
use Time::HiRes qw(time sleep);

my $small = media('jpeg');
my $big = media('jpeg', '640x480');

# /stream: frames until the viewer leaves (at most 20 s)
# /abort/K: K frames, then 3/4 of one; logs when the viewer leaves

my $srv = serve(handler => sub {
    my ($sock, $n, $log, $req) = @_;

    put($sock, response_head()) or return;

    if ($req =~ m{^GET /abort/(\d+)}) {
        my $whole = $1;
        my $p = part($big);

        put($sock, $p) or return for 1 .. $whole;
        put($sock, substr($p, 0, length($p) * 3 / 4)) or return;

        if (IO::Select->new($sock)->can_read(20)) {
            my $got = sysread($sock, my $buf, 1);
            BenchLoad::log_line($log, "request $n: left mid-part")
                unless $got;
        }

        return;
    }

    my $until = time() + 20;

    while (time() < $until) {
        put($sock, part($small)) or return;
        sleep(0.005);
    }
});

sub requests { scalar(grep { /^request \d+ GET / } server_log($srv)) }
sub left_mid { scalar(grep { /left mid-part$/ } server_log($srv)) }


my $r = run_load('--json', '-c', '2', '--cycles', '3', '-d', '20',
                 $srv->{url});

is($r->{rc}, 0, 'cycles 3: exit 0') or diag($r->{err});
is($r->{json}{connections}{attempted}, 6, 'cycles 3: 6 connections');
is($r->{json}{connections}{connected}, 6, 'cycles 3: 6 streams');
is($r->{json}{connections}{closed_after_max_frames}, 6,
   'cycles 3: each closed after its frame');
is($r->{json}{frames}, 6, 'cycles 3: one frame each');
is($r->{json}{first_frame_ms}{samples}, 6,
   'cycles 3: a first-frame time per connection');
ok(wait_for(sub { requests() == 6 }), 'cycles 3: the server saw 6 requests');

$r = run_load('--json', '--cycles', '2', '--max-frames', '4', '-d', '20',
              $srv->{url});

is($r->{rc}, 0, 'cycles 2, max-frames 4: exit 0') or diag($r->{err});
is($r->{json}{frames}, 8, 'cycles 2, max-frames 4: 8 frames');
is($r->{json}{connections}{attempted}, 2, 'cycles 2: 2 connections');
ok(wait_for(sub { requests() == 8 }), 'cycles 2: 2 more requests');

(my $abort = $srv->{url}) =~ s{/stream$}{/abort};

$r = run_load('--json', '-d', '20', '--abort-mid-frame', "$abort/0");

is($r->{rc}, 0, 'abort: exit 0') or diag($r->{err});
is($r->{json}{connections}{aborted_mid_frame}, 1, 'abort: left mid-frame');
is($r->{json}{frames}, 0, 'abort: no frame');
is($r->{json}{invalid_parts}, 0, 'abort: the cut part is not invalid');
cmp_ok($r->{json}{bytes}, '<', length(part($big)),
       'abort: less than one part read');
ok(wait_for(sub { left_mid() == 1 }), 'abort: the server saw it leave');

$r = run_load('--json', '-d', '20', '--abort-mid-frame', '--max-frames', '2',
              "$abort/2");

is($r->{rc}, 0, 'abort after 2: exit 0') or diag($r->{err});
is($r->{json}{frames}, 2, 'abort after 2: 2 frames');
is($r->{json}{connections}{aborted_mid_frame}, 1,
   'abort after 2: then left mid-frame');
ok(wait_for(sub { left_mid() == 2 }), 'abort after 2: the server saw it');

$r = run_load('--json', '-c', '2', '--cycles', '3', '-d', '20',
              '--abort-mid-frame', "$abort/0");

is($r->{rc}, 0, 'abort, cycles 3: exit 0') or diag($r->{err});
is($r->{json}{connections}{attempted}, 6, 'abort, cycles 3: 6 connections');
is($r->{json}{connections}{aborted_mid_frame}, 6,
   'abort, cycles 3: 6 left mid-frame');
ok(wait_for(sub { left_mid() == 8 }), 'abort, cycles 3: the server saw 6');

# a stream that ends before --max-frames: ended by the server, and the
# viewer's cycles go on

my $short = serve(body => response_head() . part($small) . final_boundary());

$r = run_load('--json', '--cycles', '2', '--max-frames', '5', '-d', '20',
              $short->{url});

is($r->{rc}, 0, 'short stream: exit 0') or diag($r->{err});
is($r->{json}{connections}{ended_by_server}, 2, 'short stream: ended twice');
is($r->{json}{frames}, 2, 'short stream: 1 frame each time');

stop_server($short);
stop_server($srv);

done_testing();
