# The viewer page (conf/html) in a real browser, as a newcomer sees it:
# demo/run (what `make demo` runs) serves it with nginx and the module
# while the producer loops the sample videos; headless Chromium, driven
# over WebDriver, shows it.  The picture must be camera 1's video (its
# colour bars), must move, must come back by itself after
# `nginx -s reload`, and the snapshot button must save a frame; "Back"
# must replay the last minute from Kafka and "Live" return to live.
# Screenshots stay in build/t-browser/ (viewer-*.png).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path remove_tree);
use Test::More;

use Demo qw(poll artifacts rgb bars changed luma_stddev);
use WebDriver;

plan skip_all => 'needs chromium and chromedriver (Debian: chromium, '
                 . 'chromium-driver; `make deps` installs them)'
    unless WebDriver::available();

my $port = $ENV{TEST_NGINX_PORT} || 1984;
my $art = artifacts();

# colour bars: at least half the samples of every bar (moving parts
# cross them); a blank or other picture scores near 0
my $BARS = 0.4;
# two moments of the video: the clock and the moving parts differ
my $MOVED = 0.002;

my $demo = Demo->start(name => 'viewer', port => $port,
                       env => { DEMO_DURATION => 900 });

# a URL, or -1 when demo/run exited first
my $url = $demo->wait_url(300);
ok(($url // '') =~ m{^http://}, 'demo/run prints the URL to open')
    or do { diag $demo->output; done_testing; exit };

my $downloads = "$art/viewer-downloads";
remove_tree($downloads);
make_path($downloads);

my $wd = WebDriver->start(log => "$art/chromedriver.log",
                          downloads => $downloads);

$wd->get("${url}#cam=cam1");


# each call saves build/t-browser/viewer-NAME.png and returns the pixels
# of the picture in it: the <img> letterboxes it (object-fit: contain)

my $PICTURE = <<'JS';
    var i = document.getElementById('stream');
    var r = i.getBoundingClientRect(), d = window.devicePixelRatio;
    if (!i.naturalWidth) return null;
    var s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
    var w = i.naturalWidth * s, h = i.naturalHeight * s;
    return [(r.width - w) / 2 * d, (r.height - h) / 2 * d, w * d, h * d];
JS

sub shot {
    my ($name) = @_;
    my $png = eval { $wd->screenshot('#stream') } // return undef;
    my $rect = eval { $wd->script($PICTURE) } // return undef;

    open my $f, '>', "$art/viewer-$name.png" or die "$art: $!";
    print $f $png;
    close $f;

    return rgb($png, [map { int } @$rect]);
}

sub page_value {
    my ($js) = @_;
    return eval { $wd->script($js) };
}

sub score { sprintf '%.2f', bars($_[0]) }

# the picture shows the video (shot NAME1), then a moment later it moved
# (shot NAME2)
sub moves {
    my ($name1, $name2) = @_;

    my $first = poll(20, sub {
        my $p = shot($name1);
        return $p && bars($p) >= $BARS ? $p : undef;
    });

    return $first && poll(15, sub {
        my $p = shot($name2);
        return $p && bars($p) >= $BARS && changed($first, $p) > $MOVED;
    });
}


# 1. the picture is the video

my $first = poll(60, sub {
    my $p = shot('1-first');
    return bars($p) >= $BARS ? $p : undef;
});

ok($first, 'the page shows camera 1: its colour bars')
    or diag 'best bar match ' . score(shot('1-first'))
            . ", page state: " . (page_value('return document.body.dataset.state') // '?')
            . "\n" . $demo->output;

cmp_ok(luma_stddev($first // ''), '>', 30, 'the picture is not blank');

is(page_value('return document.getElementById("stream").naturalWidth'),
   640, 'the image is the video\'s width (640)');


# 2. it moves

my $later = poll(15, sub {
    my $p = shot('2-later');
    return $p && bars($p) >= $BARS && changed($first, $p) > $MOVED
           ? $p : undef;
});

ok($later, 'a screenshot taken later differs: the picture moves');


# 3. the figures come from the status endpoint

my $figures = poll(15, sub {
    my $f = page_value('return ["fps", "viewers", "age"].map(function (id) {'
                       . ' return document.getElementById(id).textContent; })');
    return $f && $f->[0] =~ /^\d+\.\d$/ && $f->[0] > 0 && $f->[1] =~ /^[1-9]/
           ? $f : undef;
});

ok($figures, 'the page shows live figures (fps in > 0, viewers >= 1)')
    and note "fps in $figures->[0], viewers $figures->[1], age $figures->[2]";


# 4. the snapshot button saves the current frame

$wd->click('#snapshot');

my $saved = poll(15, sub { (glob "$downloads/snapshot-cam1-*.jpg")[0] });

ok($saved, 'the snapshot button downloads a JPEG of camera 1');

if ($saved) {
    open my $f, '<', $saved or die "$saved: $!";
    local $/;
    my $jpeg = <$f>;
    cmp_ok(bars(rgb($jpeg)), '>=', $BARS, 'the snapshot shows the bars');
}


# 5. after `nginx -s reload`, the page reconnects by itself

my @old = $demo->worker_pids;
ok(@old, 'the status names the workers: ' . join(' ', @old));

ok($demo->reload, 'nginx -s reload');

my %old = map { $_ => 1 } @old;

my $reconnected = poll(30, sub {
    my $s = $demo->status or return undef;
    my @pids = map { $_->{pid} } @{ $s->{workers} };
    return undef if !@pids || grep { $old{$_} } @pids;
    my ($stream) = grep { $_->{topic} eq 'dbtech' } @{ $s->{streams} };
    return $stream && $stream->{viewers} >= 1 ? $s : undef;
});

ok($reconnected, 'the new workers count the page as a viewer again')
    or diag explain $demo->status;

cmp_ok(page_value('return document.getElementById("stream")'
                  . '.dataset.reconnects') // 0,
       '>=', 1, 'the page reconnected on its own')
    and note 'reason: '
             . (page_value('return document.getElementById("stream")'
                           . '.dataset.reason') // '?');

ok(moves('3-after-reload', '4-after-reload-later'),
   'after the reload the picture is the video again, and moves');


# 6. "Back" (1 min): the page replays from Kafka, a minute behind; "Live"
#    returns.  The demo must have run a minute first: the snapshot a minute
#    back answers once Kafka holds that much.

sub replays {
    my $r = $demo->get('status?format=prometheus');
    return $r->is_success && $r->content =~ /^kafka_stream_replays (\d+)$/m
           ? $1 : undef;
}

my $minute = poll(120, sub {
    $demo->get('snapshot?id=cam1&at=-60')->code == 200
});
ok($minute, 'after a minute the demo\'s Kafka holds a minute of frames');

$wd->click('#back');

my $replaying = poll(20, sub {
    (page_value('return document.body.dataset.state') // '') eq 'replay'
        && page_value('return document.getElementById("stream").src')
           =~ /[?&]since=-60\.000/
        && replays()
});
ok($replaying, 'Back: the page plays a replay from a minute ago')
    or diag 'state ' . (page_value('return document.body.dataset.state')
                        // '?') . ', src '
            . (page_value('return document.getElementById("stream").src')
               // '?') . ', note '
            . (page_value('return document.getElementById("note")'
                          . '.textContent') // '');

like(page_value('return document.getElementById("state").textContent')
     // '', qr/^replay, 1 min behind$/, '... and says so');

ok(moves('5-replay', '6-replay-later'),
   '... showing camera 1\'s video, moving');

$wd->click('#live');

my $live_again = poll(20, sub {
    (page_value('return document.body.dataset.state') // '') eq 'live'
        && page_value('return document.getElementById("stream").src')
           !~ /since=/
        && defined replays() && replays() == 0
});
ok($live_again, 'Live: the page is live again, the replay\'s consumer gone');

ok(moves('7-live-again', '8-live-again-later'), '... and the picture moves');


# 7. stopping the demo leaves nothing behind

# the whole page, for people to look at
if (open my $f, '>', "$art/viewer-page.png") {
    print $f $wd->screenshot;
    close $f;
}

$wd->quit;

my $status = $demo->stop('TERM');
ok(defined $status, 'demo/run exits on SIGTERM');

my @left = $demo->leftovers;
is_deeply(\@left, [], 'nothing it started is left running');

done_testing;
